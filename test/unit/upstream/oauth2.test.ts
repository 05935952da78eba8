import pino from 'pino';
import t from 'tap';
import { GatewayError } from '../../../src/errors.js';
import { Metrics } from '../../../src/metrics/metrics.js';
import { OAuth2TokenManager, type TokenManagerOptions } from '../../../src/upstream/oauth2.js';
import { startTokenServer, type TokenServer } from '../../helpers/oauth.js';

const CLIENT = { id: 'gatehouse', secret: 'unit-secret-value' };

function manager(t: Tap, ts: TokenServer, over: Partial<TokenManagerOptions> = {}) {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
  const metrics = new Metrics({ defaults: false });
  const m = new OAuth2TokenManager({
    upstream: 'billing',
    request: { tokenUrl: ts.url, clientId: CLIENT.id, clientSecret: CLIENT.secret, clientAuth: 'basic', scopes: [], params: {}, timeoutMs: 1000 },
    refreshMarginMs: 60_000,
    retryOn: [401],
    retryBodyLimit: 1024,
    log,
    metrics,
    ...over,
  });
  t.teardown(() => m.close());
  return { m, lines, metrics };
}
type Tap = Parameters<typeof startTokenServer>[0];

async function results(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.upstreamTokenFetches.get()).values) out[String(v.labels.result)] = v.value;
  return out;
}

t.test('headers() makes 50 concurrent callers wait for one token request (single flight)', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  ts.mode = 'slow';
  ts.slowMs = 100;
  const { m, metrics } = manager(t, ts);
  const all = await Promise.all(Array.from({ length: 50 }, () => m.headers()));
  t.equal(ts.requests.length, 1);
  t.ok(all.every((h) => h[1] === `Bearer ${ts.issued[0]}`));
  const again = m.headers();
  t.ok(Array.isArray(again), 'a cached token is returned without a promise');
  t.same(await results(metrics), { ok: 1 });
});

t.test('the refresh margin is capped at half the token life, and a refresh runs in the background', async (t) => {
  const ts = await startTokenServer(t, CLIENT, { expiresIn: 100 });
  let now = 1_000_000;
  const { m } = manager(t, ts, { now: () => now });
  const first = (await m.headers()) as string[];
  now += 49_000;
  t.equal(m.headers(), first, 'before half-life: the same token, no request');
  t.equal(ts.requests.length, 1);
  now += 2_000;
  t.equal(m.headers(), first, 'past the refresh point: still served while the refresh runs');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(ts.requests.length, 2, 'a background refresh happened');
  t.not(m.headers(), first, 'then the new token is used');
});

t.test('failures back off exponentially; callers during a backoff fail fast', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  ts.mode = 'error500';
  let now = 0;
  const { m, lines, metrics } = manager(t, ts, { now: () => now, minBackoffMs: 1000, maxBackoffMs: 3000 });
  await t.rejects(Promise.resolve().then(() => m.headers()), { code: 'GW_UPSTREAM_CREDENTIALS', reason: 'upstream_token_failed' });
  now = 500;
  t.throws(() => m.headers(), GatewayError, 'synchronously, without a request');
  t.equal(ts.requests.length, 1);
  now = 1001;
  await t.rejects(Promise.resolve().then(() => m.headers()));
  t.equal(ts.requests.length, 2);
  now = 2400;
  t.throws(() => m.headers(), 'the second backoff is longer (1.6–2 s)');
  now = 3100;
  await t.rejects(Promise.resolve().then(() => m.headers()));
  now = 3100 + 2399;
  t.throws(() => m.headers(), 'the third backoff is capped at 3 s (2.4–3 s)');
  t.equal(ts.requests.length, 3);
  t.same(await results(metrics), { error: 3 });
  t.ok(lines.every((l) => !l.includes(CLIENT.secret)));
  t.match(lines.find((l) => l.includes('token request failed')), /"result":"error".*"status":500/);
});

t.test('Retry-After from the token endpoint lengthens the backoff', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  ts.mode = 'busy';
  let now = 0;
  const { m } = manager(t, ts, { now: () => now, minBackoffMs: 100, maxBackoffMs: 10_000 });
  await t.rejects(Promise.resolve().then(() => m.headers()));
  now = 2900;
  t.throws(() => m.headers(), 'Retry-After: 3 is honoured');
  ts.mode = 'ok';
  now = 3001;
  t.ok((await m.headers())[1]?.startsWith('Bearer '));
});

t.test('rejected() forgets a token once, however many requests carried it', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const { m } = manager(t, ts);
  const a = (await m.headers()) as string[];
  m.accepted(a);
  t.equal(m.rejected(401, a), true);
  t.equal(m.rejected(401, a), true, 'a second rejection of the same token: retry with the new one, no second discard');
  const [b1, b2] = await Promise.all([m.headers(), m.headers()]);
  t.equal(b1, b2);
  t.not(b1, a);
  t.equal(ts.requests.length, 2);
  t.equal(m.rejected(401, a), true, 'a stale rejection does not discard the new token');
  t.equal(m.headers(), b1);
});

t.test('fresh tokens rejected twice in a row: back off instead of fetching per request', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const { m, lines } = manager(t, ts);
  const a = (await m.headers()) as string[];
  t.equal(m.rejected(401, a), true, 'the first unconfirmed rejection is retried');
  const b = (await m.headers()) as string[];
  t.equal(m.rejected(401, b), false, 'the second is not');
  t.throws(() => m.headers(), { code: 'GW_UPSTREAM_CREDENTIALS', reason: 'upstream_credentials_rejected' });
  t.equal(ts.requests.length, 2);
  t.ok(lines.some((l) => l.includes('rejects freshly issued access tokens')));
});

t.test('close() stops the manager', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const { m } = manager(t, ts);
  await m.headers();
  await m.close();
  await t.rejects(Promise.resolve().then(() => m.headers()), { code: 'GW_UPSTREAM_CREDENTIALS' });
  t.equal(ts.requests.length, 1);
});

t.test('a token valid for years does not overflow the refresh timer into a refresh loop', async (t) => {
  const ts = await startTokenServer(t, CLIENT, { expiresIn: 10 * 365 * 86_400 });
  const { m } = manager(t, ts);
  await m.headers();
  m.headers(); // in use: eligible for a background refresh
  await new Promise((r) => setTimeout(r, 200));
  t.equal(ts.requests.length, 1);
  t.ok(m.expiresAt! > Date.now() + 300 * 86_400_000);
});
