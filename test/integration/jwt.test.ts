import { createPublicKey } from 'node:crypto';
import { base64url, SignJWT } from 'jose';
import t, { type Test } from 'tap';
import { startGateway, type StartedGateway } from '../helpers/gateway.js';
import { makeKey, sign, startJwks, type JwksServer, type TestKey } from '../helpers/jwks.js';
import { startUpstream, type StartedUpstream } from '../helpers/upstream.js';

const ISS = 'https://idp.test/realms/corp';
const good = { iss: ISS, aud: 'legacy-api', sub: 'alice' };

interface Env {
  gw: StartedGateway;
  up: StartedUpstream;
  idp: JwksServer;
  rsa: TestKey;
  ec: TestKey;
  ed: TestKey;
}

function yaml(upUrl: string, jwksUri: string, issuerExtra = ''): string {
  return `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
roles:
  admin: { includes: [operator] }
  operator: { includes: [viewer] }
  viewer: {}
issuers:
  corp:
    issuer: ${ISS}
    jwks_uri: ${jwksUri}
    audience: [legacy-api, other]
    algorithms: [RS256, ES256, EdDSA]
    clock_skew: 5s
    claims: { roles: realm_access.roles, teams: groups, scopes: scope }
${issuerExtra || '    jwks_cooldown: 200ms'}
upstreams: { app: { url: ${upUrl} } }
routes:
  - name: billing
    match: { path: /billing/** }
    upstream: app
    team: finance
    allow: [{ roles: [operator] }, { scopes: [billing.read] }]
  - name: ops
    match: { path: /ops/** }
    upstream: app
    auth: [corp]
    allow: [{ teams: [ops] }]
`;
}

async function env(t: Test, issuerExtra = ''): Promise<Env> {
  const [rsa, ec, ed] = await Promise.all([makeKey('RS256', 'rsa-1'), makeKey('ES256', 'ec-1'), makeKey('EdDSA', 'ed-1')]);
  const idp = await startJwks(t, [rsa.publicJwk, ec.publicJwk, ed.publicJwk]);
  const up = await startUpstream(t);
  const gw = await startGateway(t, yaml(up.url, idp.jwksUri, issuerExtra));
  await waitReady(gw.adminUrl);
  return { gw, up, idp, rsa, ec, ed };
}

async function waitReady(adminUrl: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while ((await fetch(`${adminUrl}/readyz`)).status !== 200) {
    if (Date.now() > end) throw new Error('gateway never became ready');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const get = (url: string, token: string) => fetch(url, { headers: { authorization: `Bearer ${token}` } });

t.test('RS256, ES256 and EdDSA tokens pass; claims feed allow rules and identity headers', async (t) => {
  const { gw, up, rsa, ec, ed } = await env(t);
  for (const key of [rsa, ec, ed]) {
    const token = await sign(key, { ...good, realm_access: { roles: ['viewer'] }, groups: ['finance:operator', '/ops'], scope: 'openid profile' });
    const res = await get(`${gw.url}/billing/invoices`, token);
    t.equal(res.status, 200, key.alg);
    await res.arrayBuffer();
    const h = up.requests.at(-1)!.headers;
    t.equal(h['x-gatehouse-subject'], 'alice');
    t.equal(h['x-gatehouse-auth'], 'jwt');
    t.equal(h['x-gatehouse-roles'], 'operator,viewer', 'team role finance:operator counts on the finance route');
    t.equal(h['x-gatehouse-teams'], 'finance,ops');
    t.equal(h['x-gatehouse-scopes'], 'openid,profile');
    t.equal(h.authorization, undefined, 'the token is not forwarded');
  }
  const byScope = await get(`${gw.url}/billing/x`, await sign(ec, { ...good, scope: ['billing.read'] }));
  t.equal(byScope.status, 200, 'a scope rule passes');
  const noRight = await get(`${gw.url}/billing/x`, await sign(ec, { ...good, scope: 'openid' }));
  t.equal(noRight.status, 403, 'a valid token without the right is forbidden');
  const ops = await get(`${gw.url}/ops/x`, await sign(ed, { ...good, groups: 'ops' }));
  t.equal(ops.status, 200, 'a team rule passes');
});

t.test('forged and invalid tokens are refused with 401 invalid_token and never reach the upstream', async (t) => {
  const { gw, up, rsa, ec } = await env(t);
  const jku = await startJwks(t, []);
  const attacker = await makeKey('RS256', 'rsa-1');
  const stranger = await makeKey('ES256', 'stranger');
  jku.keys.push(attacker.publicJwk, stranger.publicJwk);
  const now = Math.floor(Date.now() / 1000);
  const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
  const pem = createPublicKey({ key: rsa.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
  const cases: [string, string, string][] = [
    ['alg none', `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ ...good, exp: now + 60 })}.`, 'jwt_alg_not_allowed'],
    ['HS256 signed with the public key', await new SignJWT({ ...good, exp: now + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' }).sign(new TextEncoder().encode(pem)), 'jwt_alg_not_allowed'],
    ['wrong aud', await sign(rsa, { ...good, aud: 'someone-else' }), 'jwt_audience'],
    ['missing aud', await sign(rsa, { iss: ISS, sub: 'alice' }), 'jwt_claim_missing'],
    ['wrong iss', await sign(rsa, { ...good, iss: 'https://evil.test' }), 'jwt_issuer'],
    ['expired', await sign(ec, { ...good, exp: now - 3600, iat: now - 7200 }), 'jwt_expired'],
    ['not yet valid', await sign(ec, { ...good, nbf: now + 3600 }), 'jwt_not_yet_valid'],
    ['iat in the future', await sign(ec, { ...good, iat: now + 3600 }), 'jwt_iat_future'],
    ['unknown kid', await sign(stranger, good), 'jwt_kid_unknown'],
    ['embedded jwk', await sign(attacker, good, { header: { jwk: attacker.publicJwk } }), 'jwt_untrusted_header'],
    ['embedded jwk without kid', await sign(attacker, good, { noKid: true, header: { jwk: attacker.publicJwk } }), 'jwt_untrusted_header'],
    ['jku pointing elsewhere', await sign(stranger, good, { header: { jku: jku.jwksUri } }), 'jwt_untrusted_header'],
    ['another key under a known kid', await sign(attacker, good), 'jwt_bad_signature'],
    ['control character in a role', await sign(rsa, { ...good, realm_access: { roles: ['viewer\u0007'] } }), 'claim_invalid'],
  ];
  for (const [name, token, reason] of cases) {
    const res = await get(`${gw.url}/billing/x`, token);
    t.equal(res.status, 401, name);
    t.match(res.headers.get('www-authenticate'), /error="invalid_token"/, `${name}: invalid_token`);
    const body = await res.text();
    t.notMatch(body, token.slice(0, 20), `${name}: the body does not echo the token`);
    await new Promise((r) => setTimeout(r, 5));
    const line = gw.logs.map((l) => JSON.parse(l) as { msg?: string; reason?: string }).filter((l) => l.msg === 'request').at(-1);
    t.equal(line?.reason, reason, `${name}: audit reason`);
  }
  t.equal(up.requests.length, 0, 'no refused request reached the upstream');
  t.equal(jku.hits.length, 0, 'the jku server received no request');
  const all = gw.logs.join('\n');
  for (const [name, token] of cases) t.notOk(all.includes(token.split('.')[1]!), `${name}: no token in the logs`);
});

t.test('a rotated key is accepted on first use; the JWKS going down does not refuse valid tokens', async (t) => {
  const { gw, up, idp, rsa } = await env(t);
  const rotated = await makeKey('ES256', 'ec-2025');
  idp.keys.push(rotated.publicJwk);
  const res = await get(`${gw.url}/ops/x`, await sign(rotated, { ...good, groups: ['ops'] }));
  t.equal(res.status, 200, 'new kid accepted on its first use');
  await idp.stop();
  for (const key of [rotated, rsa]) {
    const r = await get(`${gw.url}/ops/x`, await sign(key, { ...good, groups: ['ops'], jti: key.kid }));
    t.equal(r.status, 200, `${key.kid} still accepted with the JWKS down`);
  }
  const unknown = await get(`${gw.url}/ops/x`, await sign(await makeKey('ES256', 'nope'), { ...good, groups: ['ops'] }));
  t.equal(unknown.status, 401, 'an unknown kid is still refused while the JWKS is down');
  t.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200, 'still ready on cached keys');
  t.equal(up.requests.length, 3);
});

t.test('a burst of 1000 tokens with random unknown kids causes at most a handful of JWKS fetches', async (t) => {
  // Default jwks_cooldown (10s): the first unknown kid refetches, the rest wait for the cooldown.
  const { gw, up, idp } = await env(t, '    jwks_refresh: 5m');
  const stranger = await makeKey('ES256', 'x');
  const before = idp.hits.length;
  const tokens = await Promise.all(Array.from({ length: 1000 }, () => sign(stranger, good, { header: { kid: `k-${Math.random().toString(36).slice(2)}` } })));
  const statuses: number[] = [];
  const started = Date.now();
  for (let i = 0; i < tokens.length; i += 50) {
    const batch = await Promise.all(tokens.slice(i, i + 50).map(async (tok) => {
      const r = await get(`${gw.url}/ops/x`, tok);
      await r.arrayBuffer();
      return r.status;
    }));
    statuses.push(...batch);
  }
  const fetches = idp.hits.length - before;
  t.ok(statuses.every((s) => s === 401), 'all refused');
  t.ok(fetches <= 1, `JWKS fetches: ${fetches}`);
  t.comment(`1000 unknown-kid tokens in ${Date.now() - started} ms → ${fetches} JWKS fetch(es) (jwks_cooldown 10s)`);
  t.equal(up.requests.length, 0);
  const m = await gw.gw.metrics.jwksFetches.get();
  t.ok(m.values.some((v) => v.labels.issuer === 'corp' && v.labels.result === 'ok'), 'fetches counted by issuer and result');
});

t.test('/readyz is 503 while the JWKS is unreachable at start, tokens get 503, then both recover', async (t) => {
  const rsa = await makeKey('RS256', 'rsa-1');
  const idp = await startJwks(t, [rsa.publicJwk]);
  await idp.stop();
  const up = await startUpstream(t);
  const gw = await startGateway(t, yaml(up.url, idp.jwksUri));
  const ready = await fetch(`${gw.adminUrl}/readyz`);
  t.equal(ready.status, 503);
  t.match(await ready.json(), { waiting_for: ['corp'] });
  const res = await get(`${gw.url}/billing/x`, await sign(rsa, { ...good, scope: 'billing.read' }));
  t.equal(res.status, 503, 'a token for an issuer without keys is a 503, never a pass');
  t.match(await res.json(), { code: 'GW_AUTH_UNAVAILABLE' });
  t.equal(up.requests.length, 0);
  await idp.restart();
  await new Promise((r) => setTimeout(r, 250));
  const later = await get(`${gw.url}/billing/x`, await sign(rsa, { ...good, scope: 'billing.read' }));
  t.equal(later.status, 200, 'a token fetches the keys once the endpoint is back');
  t.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200);
  t.ok(gw.logs.some((l) => l.includes('JWKS fetch failed')), 'the failure was logged');
});

t.test('a reload that changes only the audience keeps the warm JWKS and applies the new audience', async (t) => {
  const { gw, up, idp, ec } = await env(t);
  const hits = idp.hits.length;
  const token = await sign(ec, { ...good, groups: ['ops'] });
  t.equal((await get(`${gw.url}/ops/x`, token)).status, 200);
  gw.writeConfig(yaml(up.url, idp.jwksUri).replace('audience: [legacy-api, other]', 'audience: other'));
  const r = await gw.gw.reload('test');
  t.ok(r.ok, 'reloaded');
  t.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200, 'ready at once');
  const again = await get(`${gw.url}/ops/x`, token);
  t.equal(again.status, 401, 'the cached outcome does not outlive the old audience');
  const other = await get(`${gw.url}/ops/x`, await sign(ec, { ...good, aud: 'other', groups: ['ops'] }));
  t.equal(other.status, 200, 'a token for the new audience passes');
  t.equal(idp.hits.length, hits, 'no JWKS refetch');
});
