/**
 * `gatehouse explain`: offline, the route, the caller, each allow rule and
 * the decision, from the gateway's own stages; exit 0 when the request would
 * be allowed, 1 when refused (like `kubectl auth can-i`), 2 for usage.
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { makeKey, sign, startJwks } from '../helpers/jwks.js';

const ISS = 'https://idp.test/realms/corp';

async function setup(tt: Test): Promise<{ dir: string; jwt: (claims?: Record<string, unknown>) => Promise<string>; explain: (...args: string[]) => ReturnType<typeof runCli> }> {
  const key = await makeKey('ES256', 'ec-1');
  const idp = await startJwks(tt, [key.publicJwk]);
  const dir = tt.testdir({
    'gateway.yaml': `
server: { listen: 127.0.0.1:0 }
store: file:./state/accounts.json
roles:
  operator: { includes: [viewer] }
  viewer:   {}
issuers:
  corp: { issuer: "${ISS}", jwks_uri: "${idp.jwksUri}", audience: legacy-api, algorithms: [ES256], claims: { scopes: scope } }
routes:
  - { name: health, match: { path: /health }, public: true, respond: { body: ok } }
  - { name: write, match: { path: /api/**, methods: [POST] }, respond: { body: ok }, allow: [{ roles: [operator] }] }
  - { name: read, match: { path: /api/** }, respond: { body: ok }, allow: [{ roles: [viewer] }, { scopes: [api.read] }] }
`,
  });
  const explain = (...args: string[]) => runCli(['explain', ...args, '-c', join(dir, 'gateway.yaml')]);
  const jwt = (claims: Record<string, unknown> = {}) => sign(key, { iss: ISS, aud: 'legacy-api', sub: 'batch-job', scope: 'api.read', ...claims });
  return { dir, jwt, explain };
}

t.test('an allowed request exits 0; every kind of refusal exits 1 and says why', async (t) => {
  const { dir, explain, jwt } = await setup(t);
  const created = await runCli(['accounts', 'create', 'reader', '--role', 'viewer', '-c', join(dir, 'gateway.yaml')]);
  t.equal(created.code, 0, created.stderr);
  const token = created.stdout.trim();

  const allowed = await explain('--token', token, 'GET', '/api/orders');
  t.equal(allowed.code, 0, 'allowed: exit 0');
  t.match(allowed.stdout, /route:\s+read \(routes\[2\]\)/);
  t.match(allowed.stdout, /caller:\s+service_account "reader" via service_account \(key id [0-9A-Za-z]{12}\)/);
  t.match(allowed.stdout, /\[0\] roles any of \[viewer\]: yes/);
  t.match(allowed.stdout, /decision:\s+allow \(granted\) → 200/);

  const denied = await explain('--token', token, 'POST', '/api/orders');
  t.equal(denied.code, 1, 'denied by the rules: exit 1');
  t.match(denied.stdout, /route:\s+write/);
  t.match(denied.stdout, /\[0\] roles any of \[operator\]: no — none of roles \[operator\]/);
  t.match(denied.stdout, /decision:\s+deny \(.+\) → 403/);

  const noToken = await explain('GET', '/api/orders');
  t.equal(noToken.code, 1, 'no token: exit 1');
  t.match(noToken.stdout, /caller:\s+refused: token_missing/);
  t.match(noToken.stdout, /→ 401/);

  const mistyped = await explain('--token', token.slice(0, 30) + (token[30] === 'a' ? 'b' : 'a') + token.slice(31), 'GET', '/api/orders');
  t.equal(mistyped.code, 1);
  t.match(mistyped.stdout, /caller:\s+refused: token_malformed \(token checksum does not match/);

  const noRoute = await explain('--token', token, 'GET', '/elsewhere');
  t.equal(noRoute.code, 1, 'no route: exit 1');
  t.match(noRoute.stdout, /route:\s+none matches/);
  t.match(noRoute.stdout, /→ 404/);

  const pub = await explain('GET', '/health');
  t.equal(pub.code, 0, 'a public route: exit 0');
  t.match(pub.stdout, /decision:\s+allow \(public\) → 200/);

  const json = await explain('--json', '--token', token, 'POST', '/api/orders');
  t.equal(json.code, 1, '--json exits as the text form does');
  t.match(JSON.parse(json.stdout), { decision: 'deny', status: 403, route: { name: 'write' }, rules: [{ index: 0, holds: false }] });

  const secret = token.slice(17, 60);
  for (const r of [allowed, denied, mistyped, noRoute, json]) t.notOk((r.stdout + r.stderr).includes(secret), 'the token secret is never printed');
});

t.test('a JWT is verified offline against the issuer JWKS', async (t) => {
  const { explain, jwt } = await setup(t);
  const ok = await explain('--token', await jwt(), 'GET', 'http://api.example/api/orders');
  t.equal(ok.code, 0, ok.stdout + ok.stderr);
  t.match(ok.stdout, /caller:\s+jwt "batch-job" via corp/);
  t.match(ok.stdout, /\[1\] scopes all of \[api\.read\]: yes/);

  const expired = await explain('--token', await jwt({ exp: Math.floor(Date.now() / 1000) - 3600 }), 'GET', '/api/orders');
  t.equal(expired.code, 1);
  t.match(expired.stdout, /caller:\s+refused: jwt_expired/);

  const noScope = await explain('--token', await jwt({ scope: 'other' }), 'GET', '/api/orders');
  t.equal(noScope.code, 1);
  t.match(noScope.stdout, /\[1\] scopes all of \[api\.read\]: no — scopes missing \[api\.read\]/);
});

t.test('usage errors exit 2; a broken configuration exits 1 naming its line', async (t) => {
  const { dir, explain } = await setup(t);
  t.equal((await explain('GET')).code, 2, 'no URL');
  t.equal((await explain('GET', 'api/orders')).code, 2, 'a relative path');
  const broken = await runCli(['explain', 'GET', '/x', '-c', join(dir, 'missing.yaml')]);
  t.equal(broken.code, 1);
  t.match(broken.stderr, /missing\.yaml.*cannot read configuration file: ENOENT/);
});
