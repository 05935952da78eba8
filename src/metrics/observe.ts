/**
 * Counts every finished request (DESIGN.md §8) and serves `/metrics` on the
 * admin listener. Label values come from the configuration and a fixed set
 * only: the route name ("none" when no route matched), methodLabel(), the
 * status code the gateway answered, the decision, the upstream name and the
 * gateway's own reason ids. Label handles are cached, so a request costs a
 * few Map lookups and no label hashing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Counter, Histogram } from 'prom-client';
import type { Gateway, GatewayPlugin } from '../app.js';
import type { Observer } from '../pipeline/observe.js';
import { methodLabel, type Metrics } from './metrics.js';

/** The route label of requests that matched no route. */
export const NO_ROUTE = 'none';

type CounterChild = ReturnType<Counter<string>['labels']>;
type HistogramChild = ReturnType<Histogram<string>['labels']>;

function cached<T>(map: Map<string, T>, key: string, make: () => T): T {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

export function metricsObserver(m: Metrics): Observer {
  const requests = new Map<string, CounterChild>();
  const durations = new Map<string, HistogramChild>();
  const upstreamDurations = new Map<string, HistogramChild>();
  const upstreamErrors = new Map<string, CounterChild>();
  const authFailures = new Map<string, CounterChild>();
  return (ctx) => {
    const route = ctx.route?.name ?? NO_ROUTE;
    const method = methodLabel(ctx.method);
    const code = String(ctx.status);
    const decision = ctx.decision ?? 'error';
    cached(requests, `${route}\0${method}\0${code}\0${decision}`, () => m.requests.labels(route, method, code, decision)).inc();
    cached(durations, route, () => m.requestDuration.labels(route)).observe(ctx.elapsedMs() / 1000);
    const up = ctx.upstream;
    if (up !== undefined) {
      if (ctx.upstreamMs !== undefined) cached(upstreamDurations, up, () => m.upstreamDuration.labels(up)).observe(ctx.upstreamMs / 1000);
      const kind = ctx.upstreamError;
      if (kind !== undefined) cached(upstreamErrors, `${up}\0${kind}`, () => m.upstreamErrors.labels(up, kind)).inc();
    }
    if (ctx.status === 401) {
      const reason = ctx.reason ?? 'unknown';
      cached(authFailures, reason, () => m.authFailures.labels(reason)).inc();
    }
  };
}

/** GET /metrics: the Prometheus text exposition of the gateway's registry. */
export async function metricsHandler(req: IncomingMessage, res: ServerResponse, gw: Gateway): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
    res.end('method not allowed\n');
    return;
  }
  const m = gw.metrics;
  m.inflight.set(gw.inflight);
  const body = await m.registry.metrics();
  res.writeHead(200, { 'content-type': m.registry.contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export const metricsPlugin: GatewayPlugin = (gw) => {
  const m = gw.metrics;
  gw.observers.push(metricsObserver(m));
  m.configReloads.labels('success').inc(0);
  m.configReloads.labels('failure').inc(0);
  gw.reloadHooks.push((r) => m.configReloads.labels(r.ok ? 'success' : 'failure').inc());
  gw.adminRoutes.set('/metrics', metricsHandler);
};
