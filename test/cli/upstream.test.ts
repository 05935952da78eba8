import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { main } from '../../src/cli/main.js';
import { mask } from '../../src/cli/upstream.js';
import { startGuardedUpstream, startTokenServer } from '../helpers/oauth.js';
import { startUpstream } from '../helpers/upstream.js';

const CLIENT = { id: 'gatehouse', secret: 'cli-client-secret-value' };

async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => void out.push(s), err: (s) => void err.push(s), env });
  return { code, out: out.join('\n'), err: err.join('\n'), all: [...out, ...err].join('\n') };
}

function write(t: Parameters<typeof startUpstream>[0], yaml: string): string {
  const dir = t.testdir();
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  return file;
}

const oauthYaml = (up: string, tokenUrl: string, extra = '') => `
server: { listen: 127.0.0.1:0 }
upstreams:
  billing:
    url: ${up}/base
    credentials:
      oauth2_client_credentials:
        token_url: ${tokenUrl}
        client_id: ${CLIENT.id}
        client_secret: \${SECRET}
        scopes: [billing.read]
${extra}
routes: []
`;

t.test('mask() shows the first 4 characters and the length, only the length for short values', async (t) => {
  t.equal(mask('abcdefghijklmnop'), 'abcd…(16 chars)');
  t.equal(mask('short'), '…(5 chars)');
});

t.test('upstream test shows the token exchange and the upstream call, secrets masked', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts);
  const file = write(t, oauthYaml(up.url, ts.url, '        client_auth: body'));
  const r = await run(['upstream', 'test', 'billing', '-c', file, '--path', '/ping'], { SECRET: CLIENT.secret });
  t.equal(r.code, 0, r.all);
  t.match(r.out, `POST ${ts.url}`);
  t.match(r.out, /body: grant_type=client_credentials&scope=billing.read&client_id=gatehouse&client_secret=cli-…\(23 chars\)/);
  t.match(r.out, /token response: HTTP 200/);
  t.match(r.out, /access_token: at_1…\(\d+ chars\)/);
  t.match(r.out, /expires_in: 3600/);
  t.match(r.out, `GET ${up.url}/base/ping`);
  t.match(r.out, /authorization: Bearer at_1…/);
  t.match(r.out, /upstream response: HTTP 200/);
  t.match(r.out, /\nOK$/);
  t.notOk(r.all.includes(CLIENT.secret), 'no client secret');
  t.notOk(r.all.includes(ts.issued[0]!), 'no access token');
  t.equal(up.requests[0]?.url, '/base/ping');
});

t.test('upstream test with Basic client auth masks the Authorization header', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts);
  const file = write(t, oauthYaml(up.url, ts.url));
  const r = await run(['upstream', 'test', 'billing', '-c', file], { SECRET: CLIENT.secret });
  t.equal(r.code, 0, r.all);
  t.match(r.out, /authorization: Basic Z2F0…\(\d+ chars\)/);
  t.notOk(r.all.includes(Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')));
});

t.test('upstream test reports a rejected client and exits 1', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts);
  const file = write(t, oauthYaml(up.url, ts.url));
  const r = await run(['upstream', 'test', 'billing', '-c', file], { SECRET: 'wrong-secret-for-this-client' });
  t.equal(r.code, 1);
  t.match(r.err, /token response: FAILED \(rejected\): token endpoint answered HTTP 401 \(invalid_client\)/);
  t.match(r.err, /error: invalid_client/);
  t.notOk(r.all.includes('wrong-secret-for-this-client'));
  t.equal(up.requests.length, 0, 'no upstream call without a token');
});

t.test('upstream test reports an upstream that rejects the token', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
    res.end();
  });
  const file = write(t, oauthYaml(up.url, ts.url));
  const r = await run(['upstream', 'test', 'billing', '-c', file], { SECRET: CLIENT.secret });
  t.equal(r.code, 1);
  t.match(r.err, /upstream response: HTTP 401/);
  t.match(r.err, /the upstream rejected the credentials/);
});

t.test('upstream test with static credentials, and usage errors', async (t) => {
  const up = await startUpstream(t);
  const file = write(
    t,
    `
server: { listen: 127.0.0.1:0 }
upstreams:
  keyed: { url: ${up.url}, credentials: { headers: { X-Api-Key: "static-api-key-123" } } }
routes: []
`,
  );
  const r = await run(['upstream', 'test', 'keyed', '-c', file]);
  t.equal(r.code, 0, r.all);
  t.match(r.out, /x-api-key: stat…\(18 chars\)/);
  t.notOk(r.all.includes('static-api-key-123'));
  t.equal(up.requests[0]?.headers['x-api-key'], 'static-api-key-123');
  t.equal((await run(['upstream', 'test', 'nope', '-c', file])).code, 1);
  t.equal((await run(['upstream', 'test'])).code, 2);
  t.equal((await run(['upstream', 'list'])).code, 2);
});
