import pino from 'pino';
import t from 'tap';
import { Metrics } from '../../../src/metrics/metrics.js';
import { SecretReader } from '../../../src/config/secret.js';
import { buildCredentials } from '../../../src/upstream/credentials.js';
import { OAuth2TokenManager } from '../../../src/upstream/oauth2.js';
import type { CredentialsConfig } from '../../../src/config/schema.js';

function deps(lines: string[] = []) {
  return { secrets: new SecretReader('/nonexistent'), log: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }), metrics: new Metrics({ defaults: false }), mode: 'serve' as const };
}

const oauth = (over: Record<string, unknown> = {}) =>
  ({
    oauth2_client_credentials: {
      token_url: 'https://idp.example/token',
      client_id: 'id',
      client_secret: 'sec',
      client_auth: 'basic',
      scopes: [],
      params: {},
      refresh_margin: 60_000,
      token_timeout: 10_000,
      retry_body_limit: 65_536,
      retry_on: [401],
      ...over,
    },
  }) as CredentialsConfig;

t.test('buildCredentials() compiles static bearer, basic and headers credentials', async (t) => {
  t.same(buildCredentials('u', { bearer: 'tok' }, deps()).headers(), ['authorization', 'Bearer tok']);
  t.same(buildCredentials('u', { basic: { username: 'svc', password: 'p:w' } }, deps()).headers(), ['authorization', `Basic ${Buffer.from('svc:p:w').toString('base64')}`]);
  t.same(buildCredentials('u', { headers: { 'X-Api-Key': 'k', 'X-Tenant': 'acme' } }, deps()).headers(), ['x-api-key', 'k', 'x-tenant', 'acme']);
});

t.test('buildCredentials() refuses what could never be sent, naming the upstream but not the value', async (t) => {
  t.throws(() => buildCredentials('u', { bearer: 'a\nb' }, deps()), { message: /upstream "u": the authorization credential contains a character not allowed/ });
  t.throws(() => buildCredentials('u', { headers: { 'X-Key': 'secret\r\nx: y' } }, deps()), { message: /^((?!secret).)*$/ });
  t.throws(() => buildCredentials('u', { basic: { username: 'a:b', password: 'p' } }, deps()), { message: /may not contain ":"/ });
  t.throws(() => buildCredentials('u', { bearer: { file: 'missing.txt' } }, deps()), { message: /cannot read secret file/ });
  t.throws(() => buildCredentials('u', oauth({ params: { grant_type: 'password' } }), deps()), { message: /params may not set "grant_type"/ });
});

t.test('buildCredentials() makes a token manager for oauth2, warning about a plain-http token_url', async (t) => {
  const lines: string[] = [];
  const m = buildCredentials('billing', oauth({ token_url: 'http://idp.example/token', retry_on: [401, 403] }), deps(lines));
  t.ok(m instanceof OAuth2TokenManager);
  t.same([...m.retryOn!], [401, 403]);
  t.equal(m.retryBodyLimit, 65_536);
  t.match(lines.join(), /token_url is plain http/);
  await m.close?.();
  const quiet: string[] = [];
  await buildCredentials('b', oauth(), deps(quiet)).close?.();
  t.same(quiet, [], 'no warning for https');
});
