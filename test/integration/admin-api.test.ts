/**
 * The accounts admin API on the admin listener (DESIGN.md §6): a running
 * gateway, a real store file and audit file, tokens from the real CLI code
 * and a local JWKS.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runCli } from '../helpers/cli.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { makeKey, sign, startJwks } from '../helpers/jwks.js';

const ISS = 'https://idp.test/realms/corp';

interface Env {
  g: StartedGateway;
  root: string;
  viewer: string;
  jwt(roles: string[]): Promise<string>;
  api(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; headers: Headers; json: any }>;
  proxied(token: string): Promise<number>;
  audit(): Promise<Record<string, any>[]>;
}

async function setup(tt: Test): Promise<Env> {
  const key = await makeKey('ES256', 'ec-1');
  const idp = await startJwks(tt, [key.publicJwk]);
  const g = await startGateway(
    tt,
    `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
store: file:./data/accounts.json
audit: { file: ./audit.log, flush_interval: 20ms }
roles:
  gatehouse-admin: {}
  operator: { includes: [viewer] }
  viewer: {}
issuers:
  corp: { issuer: "${ISS}", jwks_uri: "${idp.jwksUri}", audience: gatehouse, algorithms: [ES256], claims: { roles: roles } }
routes:
  - { name: read, match: { path: /api/** }, respond: { body: ok }, allow: [{ roles: [viewer] }] }
`,
  );
  const create = async (name: string, role: string) => {
    const r = await runCli(['accounts', 'create', name, '--role', role, '-c', g.configFile]);
    tt.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const root = await create('root', 'gatehouse-admin');
  const viewer = await create('reader', 'viewer');
  return {
    g,
    root,
    viewer,
    jwt: (roles) => sign(key, { iss: ISS, aud: 'gatehouse', sub: 'alice@corp', roles }),
    async api(method, path, token, body) {
      const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${g.adminUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
      const text = await res.text();
      return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
    },
    async proxied(token) {
      for (let i = 0; ; i++) {
        const res = await fetch(`${g.url}/api/x`, { headers: { authorization: `Bearer ${token}` } });
        await res.arrayBuffer();
        if (res.status === 200 || i >= 40) return res.status;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async audit() {
      await g.gw.close();
      return readFileSync(join(g.dir, 'audit.log'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, any>);
    },
  };
}

t.test('only a gatehouse-admin principal gets in: 401 without a token, 403 without the role', async (t) => {
  const env = await setup(t);
  const none = await env.api('GET', '/admin/accounts');
  t.equal(none.status, 401);
  t.match(none.json, { code: 'GW_UNAUTHENTICATED' });
  const viewer = await env.api('GET', '/admin/accounts', env.viewer);
  t.equal(viewer.status, 403);
  t.equal((await env.api('GET', '/admin/accounts', await env.jwt(['viewer']))).status, 403, 'nor a JWT without it');
  const teamOnly = await runCli(['accounts', 'create', 'team-admin', '--role', 'viewer', '--team', 'platform:gatehouse-admin', '-c', env.g.configFile]);
  t.equal((await env.api('GET', '/admin/accounts', teamOnly.stdout.trim())).status, 403, 'nor gatehouse-admin held only in a team');
  const ok = await env.api('GET', '/admin/accounts', env.root);
  t.equal(ok.status, 200);
  t.same(ok.json.map((a: { name: string }) => a.name).sort(), ['reader', 'root', 'team-admin']);
  t.equal(ok.headers.get('cache-control'), 'no-store');
  t.equal((await env.api('GET', '/admin/accounts', await env.jwt(['gatehouse-admin']))).status, 200, 'a JWT whose roles claim holds it');

  const records = (await env.audit()).filter((r) => r.route === 'gatehouse-admin');
  t.same(
    records.map((r) => [r.status, r.decision, r.reason]),
    [
      [401, 'deny', 'token_missing'],
      [403, 'deny', 'role_missing'],
      [403, 'deny', 'role_missing'],
      [403, 'deny', 'role_missing'],
      [200, 'allow', 'granted'],
      [200, 'allow', 'granted'],
    ],
    'every admin request is audited, refused ones too',
  );
  t.match(records[4], { principal: { kind: 'service_account', subject: 'root' } });
});

t.test('create, show, rotate, revoke and delete work on the running gateway; tokens appear only in their one answer', async (t) => {
  const env = await setup(t);
  const created = await env.api('POST', '/admin/accounts', env.root, { name: 'billing-sync', role: 'viewer', teams: ['finance:operator'], description: 'nightly sync', expires_in: '6mo' });
  t.equal(created.status, 201);
  t.equal(created.headers.get('location'), '/admin/accounts/billing-sync');
  t.match(created.json, { name: 'billing-sync', key_id: /^[0-9A-Za-z]{12}$/, token: /^gth_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$/ });
  const first = created.json.token as string;
  t.equal(await env.proxied(first), 200, 'the new token works on the proxy');

  const shown = await env.api('GET', '/admin/accounts/billing-sync', env.root);
  t.equal(shown.status, 200);
  t.match(shown.json, { name: 'billing-sync', role: 'viewer', teams: { finance: 'operator' }, description: 'nightly sync', tokens: [{ key_id: created.json.key_id, status: 'active' }] });
  t.notOk(JSON.stringify(shown.json).includes('hash'), 'no hash in a listing');

  const cliView = await runCli(['accounts', 'show', 'billing-sync', '--json', '-c', env.g.configFile]);
  t.match(JSON.parse(cliView.stdout), { name: 'billing-sync' }, 'the CLI sees what the API made');

  const rotated = await env.api('POST', '/admin/accounts/billing-sync/rotate', env.root, { grace: '1h' });
  t.equal(rotated.status, 200);
  const second = rotated.json.token as string;
  t.not(second, first);
  t.match(rotated.json.previous, [{ key_id: created.json.key_id }]);
  t.equal(await env.proxied(second), 200);
  t.equal(await env.proxied(first), 200, 'the old token lives through its grace period');

  const revoked = await env.api('POST', '/admin/accounts/billing-sync/revoke', env.root);
  t.equal(revoked.status, 200);
  t.equal(revoked.json.revoked.length, 2);
  t.equal(await env.proxied(second), 401, 'revoked at once');

  t.equal((await env.api('DELETE', '/admin/accounts/billing-sync', env.root)).status, 200);
  t.equal((await env.api('GET', '/admin/accounts/billing-sync', env.root)).status, 404);

  const records = await env.audit();
  const events = records.filter((r) => r.event !== undefined && r.account === 'billing-sync');
  t.same(
    events.map((e) => e.event),
    ['account.created', 'token.rotated', 'token.revoked', 'token.revoked', 'account.deleted'],
  );
  for (const e of events) t.match(e, { principal: { kind: 'service_account', subject: 'root', key_id: /^[0-9A-Za-z]{12}$/ }, request_id: /./ }, `${e.event} names the admin who did it`);
  const everything = readFileSync(join(env.g.dir, 'audit.log'), 'utf8') + env.g.logs.join('\n');
  for (const tok of [first, second]) t.notOk(everything.includes(tok.slice(17, 60)), 'no token secret in the audit log or the log');
  const verify = await runCli(['audit', 'verify', join(env.g.dir, 'audit.log')]);
  t.equal(verify.code, 0, `the chain holds: ${verify.stdout}${verify.stderr}`);
});

t.test('bad requests get specific problems: 400, 404, 405, 409, 413', async (t) => {
  const env = await setup(t);
  const problem = async (method: string, path: string, body?: unknown) => {
    const r = await env.api(method, path, env.root, body);
    return [r.status, r.json?.code, r.json?.detail, r.headers.get('allow')];
  };
  t.match(await problem('POST', '/admin/accounts', { name: 'root', role: 'viewer' }), [409, 'GW_CONFLICT', 'account "root" already exists']);
  t.match(await problem('POST', '/admin/accounts', { name: 'x', role: 'superuser' }), [400, 'GW_BAD_REQUEST', /unknown role "superuser"/]);
  t.match(await problem('POST', '/admin/accounts', { name: 'x' }), [400, 'GW_BAD_REQUEST', '"role" is required']);
  t.match(await problem('POST', '/admin/accounts', { name: 'x', role: 'viewer', scopes: ['a'] }), [400, 'GW_BAD_REQUEST', /unknown field "scopes"/]);
  t.match(await problem('POST', '/admin/accounts', { name: 'x', role: 'viewer', expires_in: 'soon' }), [400, 'GW_BAD_REQUEST', /"expires_in": expected a duration/]);
  t.match(await problem('POST', '/admin/accounts', { name: 'x', role: 'viewer', expires_in: '36mo' }), [400, 'GW_BAD_REQUEST', /exceeds accounts.max_lifetime/]);
  t.match(await problem('POST', '/admin/accounts', '{"name": '), [400, 'GW_BAD_REQUEST', 'the body is not valid JSON']);
  t.match(await problem('POST', '/admin/accounts', { name: 'x'.repeat(70_000), role: 'viewer' }), [413, 'GW_PAYLOAD_TOO_LARGE']);
  t.match(await problem('GET', '/admin/accounts/nobody'), [404, 'GW_NOT_FOUND', 'unknown account "nobody"']);
  t.match(await problem('POST', '/admin/accounts/nobody/rotate'), [404, 'GW_NOT_FOUND']);
  t.match(await problem('POST', '/admin/accounts/root/promote'), [404, 'GW_NOT_FOUND']);
  t.match(await problem('PUT', '/admin/accounts/root'), [405, 'GW_METHOD_NOT_ALLOWED', /./, 'GET, HEAD, DELETE']);
  t.match(await problem('GET', '/admin/accounts/root/rotate'), [405, 'GW_METHOD_NOT_ALLOWED', /./, 'POST']);
  t.equal((await runCli(['accounts', 'list', '--json', '-c', env.g.configFile])).stdout.includes('"x"'), false, 'nothing was created by a refused request');
});
