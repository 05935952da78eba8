/**
 * The gatehouse_* metrics of DESIGN.md §8, one registry per gateway. Label
 * values come from the configuration only (route, upstream, issuer names, a
 * fixed method set), never from the request.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { AggregatedHistogram } from './aggregated-histogram.js';
import { DeferredCounter } from './deferred-counter.js';

export const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A method label from the fixed set; anything else is OTHER. */
export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'OTHER';
}

/** Bucket bounds (seconds) of both duration histograms. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The gateway's registry and metrics. The five series every finished request
 * feeds (requests, the two durations, upstream errors, auth failures) are
 * accumulated as plain numbers and read at scrape time (DeferredCounter,
 * AggregatedHistogram; issue 6); the others are prom-client metrics used
 * directly. The object outlives reloads, so series keep counting across them.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new DeferredCounter({ name: 'gatehouse_requests_total', help: 'Requests handled, by route, method, status code and decision.', labelNames: ['route', 'method', 'code', 'decision'] as const, registers: [this.registry] });
  readonly requestDuration = new AggregatedHistogram({ name: 'gatehouse_request_duration_seconds', help: 'Time from request arrival to the end of the response, by route.', labelNames: ['route'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly upstreamDuration = new AggregatedHistogram({ name: 'gatehouse_upstream_duration_seconds', help: 'Time spent on the upstream exchange, by upstream.', labelNames: ['upstream'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly upstreamErrors = new DeferredCounter({ name: 'gatehouse_upstream_errors_total', help: 'Upstream failures, by upstream and kind (connect, timeout, reset, credentials).', labelNames: ['upstream', 'kind'] as const, registers: [this.registry] });
  readonly authFailures = new DeferredCounter({ name: 'gatehouse_auth_failures_total', help: 'Refused authentications, by reason.', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly jwksFetches = new Counter({ name: 'gatehouse_jwks_fetches_total', help: 'JWKS fetches, by issuer and result.', labelNames: ['issuer', 'result'] as const, registers: [this.registry] });
  readonly configReloads = new Counter({ name: 'gatehouse_config_reloads_total', help: 'Configuration reloads, by result.', labelNames: ['result'] as const, registers: [this.registry] });
  readonly tokenExpiry = new Gauge({ name: 'gatehouse_token_expiry_timestamp_seconds', help: 'Expiry time of each service account token (Unix seconds).', labelNames: ['account'] as const, registers: [this.registry] });
  readonly inflight = new Gauge({ name: 'gatehouse_inflight_requests', help: 'Requests being handled now.', registers: [this.registry] });
  readonly upstreamTokenFetches = new Counter({ name: 'gatehouse_upstream_token_fetches_total', help: 'OAuth 2.0 token requests made for upstreams, by upstream and result.', labelNames: ['upstream', 'result'] as const, registers: [this.registry] });
  readonly auditWriteFailures = new Counter({ name: 'gatehouse_audit_write_failures_total', help: 'Audit records that could not be written.', registers: [this.registry] });
  readonly storeErrors = new Counter({ name: 'gatehouse_store_errors_total', help: 'Token store read failures (the last good snapshot keeps serving).', labelNames: ['kind'] as const, registers: [this.registry] });

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults !== false) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client names these gauges *_total, which `promtool check metrics` rejects
      // ("non-counter metrics should not have _total suffix"); nodejs_active_handles,
      // nodejs_active_requests and nodejs_active_resources carry the same numbers by type.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    }
  }
}
