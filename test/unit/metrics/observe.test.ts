import { Counter, Histogram, Registry } from 'prom-client';
import t from 'tap';
import type { RequestContext } from '../../../src/pipeline/context.js';
import { LATENCY_BUCKETS, Metrics, methodLabel } from '../../../src/metrics/metrics.js';
import { metricsObserver, NO_ROUTE } from '../../../src/metrics/observe.js';
import { seededRandom } from '../../helpers/random.js';

interface Fake {
  route?: string;
  method?: string;
  status?: number;
  decision?: 'allow' | 'deny' | 'error';
  reason?: string;
  upstream?: string;
  upstreamMs?: number;
  upstreamError?: string;
  ms?: number;
}

function fakeCtx(f: Fake = {}): RequestContext {
  return {
    route: f.route === undefined ? undefined : { name: f.route },
    method: f.method ?? 'GET',
    status: f.status ?? 200,
    decision: f.decision,
    reason: f.reason,
    upstream: f.upstream,
    upstreamMs: f.upstreamMs,
    upstreamError: f.upstreamError,
    durationMs: f.ms ?? 3.1,
  } as unknown as RequestContext;
}

const NAMES = ['gatehouse_requests_total', 'gatehouse_request_duration_seconds', 'gatehouse_upstream_duration_seconds', 'gatehouse_upstream_errors_total', 'gatehouse_auth_failures_total'];

/** The text of the five series the observer feeds. */
async function exposition(registry: Registry): Promise<string> {
  const parts = [];
  for (const name of NAMES) parts.push(await registry.getSingleMetricAsString(name));
  return parts.join('\n\n');
}

/** The observer as it was before issue 6, straight on prom-client metrics: the reference for what /metrics shows. */
async function referenceObserver(m: Metrics): Promise<{ registry: Registry; observe: (ctx: RequestContext) => void }> {
  const registry = new Registry();
  const help = new Map((await m.registry.getMetricsAsJSON()).map((x) => [x.name, x.help]));
  const config = <L extends string>(name: string, labelNames: readonly L[]) => ({ name, help: help.get(name)!, labelNames, registers: [registry] });
  const requests = new Counter(config(NAMES[0]!, ['route', 'method', 'code', 'decision'] as const));
  const duration = new Histogram({ ...config(NAMES[1]!, ['route'] as const), buckets: LATENCY_BUCKETS });
  const upstreamDuration = new Histogram({ ...config(NAMES[2]!, ['upstream'] as const), buckets: LATENCY_BUCKETS });
  const upstreamErrors = new Counter(config(NAMES[3]!, ['upstream', 'kind'] as const));
  const authFailures = new Counter(config(NAMES[4]!, ['reason'] as const));
  return {
    registry,
    observe: (ctx) => {
      const route = ctx.route?.name ?? NO_ROUTE;
      requests.inc({ route, method: methodLabel(ctx.method), code: String(ctx.status), decision: ctx.decision ?? 'error' });
      duration.observe({ route }, ctx.durationMs / 1000);
      if (ctx.upstream !== undefined) {
        if (ctx.upstreamMs !== undefined) upstreamDuration.observe({ upstream: ctx.upstream }, ctx.upstreamMs / 1000);
        if (ctx.upstreamError !== undefined) upstreamErrors.inc({ upstream: ctx.upstream, kind: ctx.upstreamError });
      }
      if (ctx.status === 401) authFailures.inc({ reason: ctx.reason ?? 'unknown' });
    },
  };
}

function randomRequests(n: number, seed: number): RequestContext[] {
  const next = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const out: RequestContext[] = [];
  for (let i = 0; i < n; i++) {
    const upstream = pick([undefined, 'app', 'billing', 'with "quote"']);
    out.push(
      fakeCtx({
        ...(next() < 0.9 ? { route: pick(['open', 'api', 'billing', 'back\\slash']) } : {}),
        method: pick(['GET', 'GET', 'POST', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND', 'get']),
        status: pick([200, 200, 200, 204, 301, 401, 403, 404, 499, 500, 502, 504]),
        ...(next() < 0.95 ? { decision: pick(['allow', 'deny', 'error'] as const) } : {}),
        ...(next() < 0.8 ? { reason: pick(['granted', 'token_missing', 'token_expired']) } : {}),
        ...(upstream === undefined ? {} : { upstream, ...(next() < 0.9 ? { upstreamMs: next() ** 3 * 200 } : {}), ...(next() < 0.1 ? { upstreamError: pick(['connect', 'timeout', 'reset']) } : {}) }),
        ms: next() < 0.02 ? 40_000 : next() ** 3 * 300,
      }),
    );
  }
  return out;
}

t.test('metricsObserver() exposes what prom-client metrics fed per request expose, byte for byte', async (t) => {
  const m = new Metrics({ defaults: false });
  const ref = await referenceObserver(m);
  const observe = metricsObserver(m);
  const requests = randomRequests(3000, 42);
  for (const [i, ctx] of requests.entries()) {
    observe(ctx);
    ref.observe(ctx);
    // Scrapes in between: what collect() moved is neither lost nor counted twice.
    if (i % 700 === 0) t.equal(await exposition(m.registry), await exposition(ref.registry), `after ${i + 1} requests`);
  }
  const text = await exposition(m.registry);
  t.equal(text, await exposition(ref.registry), 'after all requests');
  t.equal(await exposition(m.registry), text, 'a scrape without new requests changes nothing');
  t.match(text, 'method="OTHER"');
  t.match(text, 'route="none"');
  t.match(text, 'decision="error"');
  t.match(text, 'gatehouse_auth_failures_total{reason="unknown"}');
  t.match(text, 'upstream="with \\"quote\\""', 'escaped by prom-client');
});

t.test('metricsObserver() counts known requests exactly: counts, sums and buckets', async (t) => {
  const m = new Metrics({ defaults: false });
  const observe = metricsObserver(m);
  const ms = [0.3, 0.5, 0.7, 3, 3, 3.1, 26, 1500, 45_000];
  for (const d of ms) observe(fakeCtx({ route: 'bench', decision: 'allow', upstream: 'up', upstreamMs: d / 2, ms: d }));
  observe(fakeCtx({ route: 'bench', status: 401, decision: 'deny', reason: 'token_expired', ms: 0.2 }));
  const text = await exposition(m.registry);
  const bucket = (le: string) => `gatehouse_request_duration_seconds_bucket{le="${le}",route="bench"}`;
  const lines = text.split('\n');
  const value = (series: string) => lines.find((l) => l.startsWith(`${series} `))?.slice(series.length + 1);
  t.equal(value('gatehouse_requests_total{route="bench",method="GET",code="200",decision="allow"}'), '9');
  t.equal(value('gatehouse_requests_total{route="bench",method="GET",code="401",decision="deny"}'), '1');
  t.equal(value('gatehouse_auth_failures_total{reason="token_expired"}'), '1');
  t.equal(value(bucket('0.0005')), '3', '0.2, 0.3, 0.5 ms: le is inclusive');
  t.equal(value(bucket('0.001')), '4');
  t.equal(value(bucket('0.0025')), '4');
  t.equal(value(bucket('0.005')), '7');
  t.equal(value(bucket('0.025')), '7');
  t.equal(value(bucket('0.05')), '8');
  t.equal(value(bucket('1')), '8');
  t.equal(value(bucket('2.5')), '9');
  t.equal(value(bucket('30')), '9');
  t.equal(value(bucket('+Inf')), '10');
  t.equal(value('gatehouse_request_duration_seconds_count{route="bench"}'), '10');
  const sum = [...ms, 0.2].reduce((a, d) => a + d / 1000, 0);
  t.equal(Number(value('gatehouse_request_duration_seconds_sum{route="bench"}')), sum);
  t.equal(value('gatehouse_upstream_duration_seconds_count{upstream="up"}'), '9', 'the 401 never reached the upstream');
  t.equal(value('gatehouse_upstream_duration_seconds_bucket{le="0.0025",upstream="up"}'), '6', 'halved: 0.15 … 1.55 ms');
  t.equal(value('gatehouse_upstream_duration_seconds_bucket{le="0.005",upstream="up"}'), '6');
  t.equal(value('gatehouse_upstream_duration_seconds_bucket{le="0.025",upstream="up"}'), '7');
});

t.test('metricsObserver() loses nothing between a scrape and the requests around it', async (t) => {
  const m = new Metrics({ defaults: false });
  const observe = metricsObserver(m);
  const count = async () => {
    const text = await m.registry.metrics();
    const get = (s: string) => Number(text.split('\n').find((l) => l.startsWith(`${s} `))?.slice(s.length + 1) ?? 0);
    return [get('gatehouse_requests_total{route="a",method="GET",code="200",decision="allow"}'), get('gatehouse_request_duration_seconds_count{route="a"}')];
  };
  for (let i = 0; i < 5; i++) observe(fakeCtx({ route: 'a', decision: 'allow' }));
  t.same(await count(), [5, 5]);
  t.same(await count(), [5, 5], 'not counted twice');
  for (let i = 0; i < 3; i++) observe(fakeCtx({ route: 'a', decision: 'allow' }));
  // Requests that end while a scrape is under way land in the next one.
  const scraping = m.registry.metrics();
  for (let i = 0; i < 4; i++) observe(fakeCtx({ route: 'a', decision: 'allow' }));
  const during = await scraping;
  t.match(during, 'gatehouse_requests_total{route="a",method="GET",code="200",decision="allow"} 8\n');
  t.same(await count(), [12, 12]);
});

t.test('metricsObserver() instances on one Metrics share their series, as across reloads', async (t) => {
  const m = new Metrics({ defaults: false });
  const first = metricsObserver(m);
  const second = metricsObserver(m);
  first(fakeCtx({ route: 'a', decision: 'allow', upstream: 'up', upstreamMs: 1, upstreamError: 'reset' }));
  second(fakeCtx({ route: 'a', decision: 'allow', upstream: 'up', upstreamMs: 1, upstreamError: 'reset' }));
  const text = await exposition(m.registry);
  t.match(text, 'gatehouse_requests_total{route="a",method="GET",code="200",decision="allow"} 2\n');
  t.match(text, 'gatehouse_upstream_errors_total{upstream="up",kind="reset"} 2\n');
  t.equal(text.split('\n').filter((l) => l.startsWith('gatehouse_request_duration_seconds_count')).join('\n'), 'gatehouse_request_duration_seconds_count{route="a"} 2', 'one series');
});
