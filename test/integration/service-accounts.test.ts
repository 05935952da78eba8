/**
 * Issue 3: service accounts on a running gateway, a real store file and a
 * recording upstream. Accounts are managed with the real CLI code (in
 * process), exactly as `gatehouse accounts …` does.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Client } from 'undici';
import { issueToken } from '../../src/authn/tokens.js';
import { ADDED_HEADERS } from '../../src/pipeline/transform.js';
import { runCli } from '../helpers/cli.js';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { startUpstream, type StartedUpstream } from '../helpers/upstream.js';

const yaml = (up: string, extra = '') => `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
store: file:./data/accounts.json
accounts: { last_used_interval: 200ms${extra} }
roles:
  admin:    { includes: [operator] }
  operator: { includes: [viewer] }
  viewer:   {}
upstreams: { app: { url: ${up} } }
routes:
  - { name: read, match: { path: /api/**, methods: [GET] }, upstream: app, allow: [{ roles: [viewer] }] }
  - { name: write, match: { path: /api/**, methods: [POST] }, upstream: app, allow: [{ roles: [operator] }] }
  - { name: finance, match: { path: /finance/** }, team: finance, upstream: app, allow: [{ roles: [operator] }] }
  - { name: ops, match: { path: /ops/** }, team: ops, upstream: app, allow: [{ roles: [operator] }] }
`;

interface Env {
  g: StartedGateway;
  up: StartedUpstream;
  store: string;
  tokens: string[];
  cli(...args: string[]): ReturnType<typeof runCli>;
  create(name: string, ...args: string[]): Promise<string>;
  call(token: string | undefined, path?: string, method?: string): Promise<Response>;
}

async function setup(tt: Test): Promise<Env> {
  const up = await startUpstream(tt);
  const g = await startGateway(tt, yaml(up.url));
  const tokens: string[] = [];
  const cli = (...args: string[]) => runCli([...args, '-c', g.configFile]);
  return {
    g,
    up,
    store: join(g.dir, 'data', 'accounts.json'),
    tokens,
    cli,
    async create(name, ...args) {
      const r = await cli('accounts', 'create', name, ...args);
      tt.equal(r.code, 0, `accounts create ${name}: ${r.stderr}`);
      const token = r.stdout.trim();
      tokens.push(token);
      return token;
    },
    call: (token, path = '/api/hello', method = 'GET') =>
      fetch(`${g.url}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }),
  };
}

/** Polls until `call()` answers `status`; returns the time it took (ms). */
async function until(call: () => Promise<Response>, status: number, limitMs = 2000): Promise<number> {
  const start = Date.now();
  for (;;) {
    const r = await call();
    await r.arrayBuffer();
    if (r.status === status) return Date.now() - start;
    if (Date.now() - start > limitMs) return Infinity;
    await new Promise((res) => setTimeout(res, 25));
  }
}

/** The reason of the last request log line. */
function lastReason(g: StartedGateway): string | undefined {
  for (let i = g.logs.length - 1; i >= 0; i--) {
    const l = JSON.parse(g.logs[i]!) as { msg?: string; reason?: string };
    if (l.msg === 'request') return l.reason;
  }
  return undefined;
}

function noSecrets(tt: Test, env: Env, what: string, text: string): void {
  for (const token of env.tokens) {
    const secret = token.split('_')[2]!.slice(0, 43);
    tt.notOk(text.includes(secret), `${what} never contains a token secret`);
  }
}

t.test('a store that does not exist yet is announced at start with its path, and picked up once created', async (t) => {
  const env = await setup(t);
  const warning = env.g.logs.find((l) => l.includes('token store does not exist yet'));
  t.ok(warning, 'warned at start');
  t.match(warning, /"level":"warn"/);
  t.ok(warning?.includes(JSON.stringify(env.store)), 'naming the path the gateway looks at (a mistyped store: path shows here)');
  const token = await env.create('first', '--role', 'viewer');
  t.ok((await until(() => env.call(token), 200)) < 2000, 'the first account works within 2 s');

  // A gateway started on the store that now exists says nothing of the kind.
  const again = await startGateway(t, readFileSync(env.g.configFile, 'utf8'), { 'data/accounts.json': readFileSync(env.store, 'utf8') });
  t.notOk(again.logs.some((l) => l.includes('token store does not exist yet')));
});

t.test('a viewer token: 401 without it, 200 with it (identity headers to the upstream), 403 on a write', async (t) => {
  const env = await setup(t);
  const token = await env.create('demo', '--role', 'viewer', '--description', 'demo account');
  const none = await env.call(undefined);
  t.equal(none.status, 401);
  const ok = await env.call(token);
  t.equal(ok.status, 200, 'a store change reaches the running gateway');
  const h = env.up.requests.at(-1)!.headers;
  t.equal(h['x-gatehouse-subject'], 'demo');
  t.equal(h['x-gatehouse-auth'], 'service_account');
  t.equal(h['x-gatehouse-roles'], 'viewer');
  t.equal(h.authorization, undefined, 'the token never reaches the upstream');
  // Every header the gateway adds is one it registers with undici (header-names.ts): the two lists stay one.
  const added = Object.keys(h).filter((n) => n.startsWith('x-'));
  t.same(added.filter((n) => !(ADDED_HEADERS as readonly string[]).includes(n)), [], 'no added header missing from ADDED_HEADERS');
  t.equal(added.length, ADDED_HEADERS.length, 'all nine added headers arrive');
  const post = await env.call(token, '/api/hello', 'POST');
  t.equal(post.status, 403);
  t.equal(lastReason(env.g), 'role_missing');
  noSecrets(t, env, 'the store file', readFileSync(env.store, 'utf8'));
  noSecrets(t, env, 'the gateway log', env.g.logs.join('\n'));
});

t.test('admin satisfies a viewer rule; finance:operator grants only on finance routes', async (t) => {
  const env = await setup(t);
  const admin = await env.create('root', '--role', 'admin');
  const fin = await env.create('fin', '--role', 'viewer', '--team', 'finance:operator', '--team', 'ops');
  t.equal((await env.call(admin)).status, 200, 'admin reads');
  t.equal((await env.call(admin, '/api/x', 'POST')).status, 200, 'admin writes');
  t.equal((await env.call(fin, '/finance/x', 'POST')).status, 200, 'finance:operator on a finance route');
  t.equal(env.up.requests.at(-1)!.headers['x-gatehouse-roles'], 'operator,viewer');
  t.equal(env.up.requests.at(-1)!.headers['x-gatehouse-teams'], 'finance,ops');
  t.equal((await env.call(fin, '/ops/x', 'POST')).status, 403, 'a member of ops without a team role');
  t.equal((await env.call(fin, '/api/x', 'POST')).status, 403, 'not outside the team');
  t.equal((await env.call(fin, '/api/x')).status, 200, 'global viewer still reads');
});

t.test('revoke reaches the running gateway within 2 s', async (t) => {
  const env = await setup(t);
  const token = await env.create('gone', '--role', 'viewer');
  t.equal((await env.call(token)).status, 200);
  const r = await env.cli('accounts', 'revoke', 'gone');
  t.equal(r.code, 0);
  const ms = await until(() => env.call(token), 401);
  t.ok(ms < 2000, `refused after ${ms} ms`);
  t.equal(lastReason(env.g), 'token_revoked');
  const res = await env.call(token);
  t.equal(res.headers.get('www-authenticate'), 'Bearer realm="gatehouse", error="invalid_token"');
  const body = await res.text();
  t.notOk(body.includes('revoked'), 'the client is not told why');
  noSecrets(t, env, 'the gateway log', env.g.logs.join('\n'));
  await env.g.gw.close();
  const audit = readFileSync(join(env.g.dir, 'data', 'audit.log'), 'utf8');
  t.match(audit, /"reason":"token_revoked"/, 'the audit record says why');
  const refused = audit.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { reason?: string; key_id?: string | null }).find((r) => r.reason === 'token_revoked');
  t.equal(refused?.key_id, token.split('_')[1], 'the refused call is traceable to its token by key id');
  t.match(audit, /"event":"token.revoked"/, 'the CLI recorded the revocation');
  noSecrets(t, env, 'the audit log', audit);
  t.notOk(/gth_[0-9A-Za-z]{12}_/.test(audit), 'no token shape at all in the audit log');
});

t.test('one kept-alive connection: each request is its own token\'s, a revocation and a one-character change are seen at once', async (t) => {
  const env = await setup(t);
  const alice = await env.create('alice', '--role', 'viewer');
  const bob = await env.create('bob', '--role', 'viewer');
  // The gateway remembers what a connection's token proved (token-memo.ts): everything below goes over this one socket.
  const conn = new Client(env.g.url, { pipelining: 1 });
  t.teardown(() => conn.destroy());
  let connects = 0;
  conn.on('connect', () => connects++);
  const call = async (token: string) => {
    const r = await conn.request({ path: '/api/hello', method: 'GET', headers: { authorization: `Bearer ${token}` } });
    await r.body.text();
    return { status: r.statusCode, subject: r.statusCode === 200 ? env.up.requests.at(-1)!.headers['x-gatehouse-subject'] : undefined };
  };
  t.strictSame(await call(alice), { status: 200, subject: 'alice' });
  t.strictSame(await call(alice), { status: 200, subject: 'alice' });
  t.strictSame(await call(bob), { status: 200, subject: 'bob' }, 'another token on the same connection is its own account');
  t.strictSame(await call(alice), { status: 200, subject: 'alice' });
  // One character of the secret changed: no memory of alice's token lets it pass (its checksum no longer matches).
  const [prefix, keyId, tail] = alice.split('_') as [string, string, string];
  const flipped = `${prefix}_${keyId}_${tail.slice(0, 20)}${tail[20] === 'a' ? 'b' : 'a'}${tail.slice(21)}`;
  t.equal((await call(flipped)).status, 401, 'a token one character off alice\'s is refused right after hers');
  t.equal(lastReason(env.g), 'token_malformed');
  // Alice's key id with another secret, checksum and all well-formed: refused as unknown, not taken for hers.
  t.equal((await call(alice)).status, 200);
  t.equal((await call(issueToken(prefix, keyId).token)).status, 401, 'alice\'s key id with another secret is refused');
  t.equal(lastReason(env.g), 'token_unknown');
  t.strictSame(await call(alice), { status: 200, subject: 'alice' });
  t.equal((await env.cli('accounts', 'revoke', 'alice')).code, 0);
  const ms = await until(async () => {
    const { status } = await call(alice);
    return new Response(null, { status });
  }, 401);
  t.ok(ms < 2000, `alice's token is refused on the same connection ${ms} ms after its revocation`);
  t.equal(lastReason(env.g), 'token_revoked');
  t.strictSame(await call(bob), { status: 200, subject: 'bob' }, 'bob is not affected');
  t.equal(connects, 1, 'every request went over one connection');
});

t.test('rotate revokes the old token at once; the new one works', async (t) => {
  const env = await setup(t);
  const old = await env.create('rot', '--role', 'viewer');
  t.equal((await env.call(old)).status, 200);
  const r = await env.cli('accounts', 'rotate', 'rot');
  t.equal(r.code, 0);
  const fresh = r.stdout.trim();
  env.tokens.push(fresh);
  t.not(fresh, old);
  t.ok((await until(() => env.call(old), 401)) < 2000, 'old token refused within 2 s');
  t.equal(lastReason(env.g), 'token_revoked');
  t.equal((await env.call(fresh)).status, 200);
  noSecrets(t, env, 'the store file', readFileSync(env.store, 'utf8'));
});

t.test('rotate --grace keeps the old token valid for its window, then refuses it', async (t) => {
  const env = await setup(t);
  const old = await env.create('graceful', '--role', 'viewer');
  const r = await env.cli('accounts', 'rotate', 'graceful', '--grace', '3s');
  t.equal(r.code, 0);
  const fresh = r.stdout.trim();
  env.tokens.push(fresh);
  t.ok((await until(() => env.call(fresh), 200)) < 2000, 'the new token works within 2 s');
  t.equal((await env.call(old)).status, 200, 'the old token still works inside the grace period');
  const ms = await until(() => env.call(old), 401, 5000);
  t.ok(ms < 5000, `old token refused once the grace period is over (${ms} ms later)`);
  t.equal(lastReason(env.g), 'token_revoked');
  t.equal((await env.call(fresh)).status, 200);
});

t.test('an expired token is refused with reason token_expired', async (t) => {
  const env = await setup(t);
  const token = await env.create('brief', '--role', 'viewer', '--expires-in', '3s');
  t.ok((await until(() => env.call(token), 200)) < 2000, 'valid at first');
  t.ok((await until(() => env.call(token), 401, 5000)) < 5000, 'refused once expired');
  t.equal(lastReason(env.g), 'token_expired');
});

t.test('malformed, mistyped and unknown tokens: generic 401, precise audit reason', async (t) => {
  const env = await setup(t);
  const token = await env.create('real', '--role', 'viewer');
  const typo = token.slice(0, 20) + (token[20] === 'a' ? 'b' : 'a') + token.slice(21);
  t.equal((await env.call(typo)).status, 401);
  t.equal(lastReason(env.g), 'token_malformed', 'a mistyped token fails its checksum');
  const typoInKeyId = token.slice(0, 6) + (token[6] === 'a' ? 'b' : 'a') + token.slice(7);
  t.equal((await env.call(typoInKeyId)).status, 401);
  t.equal(lastReason(env.g), 'token_malformed', 'so does one mistyped in its key id');
  // Key id and secret right, the checksum changed: not the token issued (secret scanners go by the checksum), refused.
  const badSum = token.slice(0, -1) + (token.at(-1) === 'a' ? 'b' : 'a');
  t.equal((await env.call(badSum)).status, 401, 'the right secret under a wrong checksum is refused');
  t.equal(lastReason(env.g), 'token_malformed');
  t.equal((await env.call(token)).status, 200, 'the token as issued still works');
  t.equal((await env.call('gth_short')).status, 401);
  t.equal(lastReason(env.g), 'token_malformed');
  await env.cli('accounts', 'delete', 'real');
  t.ok((await until(() => env.call(token), 401)) < 2000);
  t.equal(lastReason(env.g), 'token_unknown');
  t.equal((await env.call('something-else')).status, 401, 'a token no authenticator claims');
  await env.g.gw.close();
  const audit = readFileSync(join(env.g.dir, 'data', 'audit.log'), 'utf8');
  noSecrets(t, env, 'the audit log', audit);
  noSecrets(t, env, 'the gateway log', env.g.logs.join('\n'));
  const malformed = audit.split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { reason?: string; key_id?: string | null }).filter((r) => r.reason === 'token_malformed');
  t.strictSame(malformed.map((r) => r.key_id), [null, null, token.split('_')[1], null, null],
    'a malformed token names no key id, except one whose secret proved it: that one is traceable to its account');
});

t.test('the Bearer scheme in any case is accepted; another scheme, or a word that only begins like it, is refused', async (t) => {
  const env = await setup(t);
  const token = await env.create('scheme', '--role', 'viewer');
  const send = async (authorization: string) => {
    const r = await fetch(`${env.g.url}/api/hello`, { headers: { authorization } });
    await r.arrayBuffer();
    return r.status;
  };
  for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) t.equal(await send(`${scheme} ${token}`), 200, `${scheme} is the Bearer scheme (RFC 9110 §11.1: case-insensitive)`);
  for (const value of [`Basic ${token}`, `Bearerx ${token}`, `Beare ${token}`, `Bearer_${token}`, `Beaqer ${token}`, `Beare\u00e9 ${token}`, `Bearer`]) {
    t.equal(await send(value), 401, `"${value.slice(0, 8)}…" is not the Bearer scheme`);
    t.equal(lastReason(env.g), 'token_malformed');
  }
  t.equal(await send(`Bearer ${token}`), 200, 'the token itself was never the problem');
});

t.test('last-used times are batched into the store, not written per request', async (t) => {
  const env = await setup(t);
  const token = await env.create('used', '--role', 'viewer');
  await until(() => env.call(token), 200);
  for (let i = 0; i < 20; i++) await (await env.call(token)).arrayBuffer();
  let lastUsed: string | undefined;
  for (let i = 0; i < 40 && !lastUsed; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const data = JSON.parse(readFileSync(env.store, 'utf8')) as { accounts: { tokens: { last_used?: string }[] }[] };
    lastUsed = data.accounts[0]?.tokens[0]?.last_used;
  }
  t.ok(lastUsed, 'last_used recorded');
  const show = await env.cli('accounts', 'show', 'used', '--json');
  t.match(JSON.parse(show.stdout), { tokens: [{ status: 'active', last_used: String }] });
  noSecrets(t, env, 'accounts show', show.stdout);
});

t.test('a store damaged while the gateway runs: the last good snapshot keeps serving, logged and counted', async (t) => {
  const env = await setup(t);
  const token = await env.create('steady', '--role', 'viewer');
  await until(() => env.call(token), 200);
  const good = readFileSync(env.store, 'utf8');
  writeFileSync(env.store, '{ "version": 1, "accounts": [ oops');
  let logged = false;
  for (let i = 0; i < 40 && !logged; i++) {
    await new Promise((r) => setTimeout(r, 50));
    logged = env.g.logs.some((l) => l.includes('token store problem'));
  }
  t.ok(logged, 'the damage is logged');
  t.equal((await env.call(token)).status, 200, 'the last good snapshot keeps serving');
  const counted = (await env.g.gw.metrics.storeErrors.get()).values.reduce((n, v) => n + v.value, 0);
  t.ok(counted >= 1, 'counted in gatehouse_store_errors_total');
  const refused = await env.cli('accounts', 'create', 'other', '--role', 'viewer');
  t.equal(refused.code, 1, 'the CLI refuses a damaged store');
  t.match(refused.stderr, /Cannot read token store/);
  t.equal(readFileSync(env.store, 'utf8'), '{ "version": 1, "accounts": [ oops', 'never overwritten');
  writeFileSync(env.store, good);
});

t.test('a damaged store at start: the gateway refuses to start with a clear message', async (t) => {
  const up = await startUpstream(t);
  await t.rejects(startGateway(t, yaml(up.url), { 'data/accounts.json': 'not json' }), /store: Cannot read token store .*accounts\.json.*not valid JSON/);
});
