/**
 * Serializes a finished request into its audit record (DESIGN.md §7), without
 * `prev` (added when the record is chained). Never a token, a secret or a
 * header value other than User-Agent; the path without its query string.
 */
import type { RequestContext } from '../pipeline/context.js';

/** Longest field value kept; longer ones are cut and marked (DESIGN.md §10). */
export const MAX_FIELD = 1024;
export const CUT_MARK = '…[cut]';

export function cut(value: string): string {
  return value.length > MAX_FIELD ? value.slice(0, MAX_FIELD) + CUT_MARK : value;
}

function cutOrNull(value: string | undefined): string | null {
  return value === undefined ? null : cut(value);
}

/** The request target without its query, for requests refused before normalization. */
function rawPath(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

let lastMs = NaN;
let lastIso = '';

/**
 * Epoch milliseconds as ISO 8601, computed once per millisecond: under load
 * many requests arrive within the same one, and toISOString() was a third of
 * the cost of serializing a record.
 */
export function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}

/**
 * The request's record, serialized once and shared by the audit log and the
 * per-request log line. Call only once the request has ended (observers).
 */
export function recordOf(ctx: RequestContext): string {
  return (ctx.record ??= requestRecord(ctx));
}

/**
 * One object literal per shape (not spreads: a spread object goes to
 * dictionary mode and JSON.stringify gets several times slower).
 */
export function requestRecord(ctx: RequestContext): string {
  const p = ctx.principal;
  const ua = ctx.req.headers['user-agent'];
  const time = isoTime(ctx.time);
  const route = ctx.route?.name ?? null;
  const method = cut(ctx.method);
  const path = cut(ctx.path || rawPath(ctx.req.url));
  const decision = ctx.decision ?? 'error';
  const reason = cutOrNull(ctx.reason);
  const upstream = ctx.upstream ?? null;
  const duration = Math.round(ctx.elapsedMs() * 1000) / 1000;
  const userAgent = typeof ua === 'string' ? cut(ua) : null;
  if (p === undefined) {
    return JSON.stringify({
      time, request_id: ctx.id, event: 'request', principal: null, key_id: cutOrNull(ctx.keyId),
      route, method, path, status: ctx.status, decision, reason, upstream,
      duration_ms: duration, client_ip: ctx.clientIp, user_agent: userAgent,
    });
  }
  const principal = { kind: p.kind, subject: cut(p.subject) };
  if (p.kind === 'jwt') {
    // JWT records also carry the issuer and the key that verified the token.
    return JSON.stringify({
      time, request_id: ctx.id, event: 'request', principal, key_id: cutOrNull(p.keyId),
      issuer: cutOrNull(p.issuer), kid: cutOrNull(p.kid),
      route, method, path, status: ctx.status, decision, reason, upstream,
      duration_ms: duration, client_ip: ctx.clientIp, user_agent: userAgent,
    });
  }
  return JSON.stringify({
    time, request_id: ctx.id, event: 'request', principal, key_id: cutOrNull(p.keyId),
    route, method, path, status: ctx.status, decision, reason, upstream,
    duration_ms: duration, client_ip: ctx.clientIp, user_agent: userAgent,
  });
}
