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

export function requestRecord(ctx: RequestContext): string {
  const p = ctx.principal;
  const ua = ctx.req.headers['user-agent'];
  const base = {
    time: ctx.time.toISOString(),
    request_id: ctx.id,
    event: 'request',
    principal: p ? { kind: p.kind, subject: cut(p.subject) } : null,
    key_id: cutOrNull(p?.keyId),
  };
  const rest = {
    route: ctx.route?.name ?? null,
    method: cut(ctx.method),
    path: cut(ctx.path || rawPath(ctx.req.url)),
    status: ctx.status,
    decision: ctx.decision ?? 'error',
    reason: cutOrNull(ctx.reason),
    upstream: ctx.upstream ?? null,
    duration_ms: Math.round(ctx.elapsedMs() * 1000) / 1000,
    client_ip: ctx.clientIp,
    user_agent: typeof ua === 'string' ? cut(ua) : null,
  };
  // JWT records also carry the issuer and the key that verified the token.
  if (p?.kind === 'jwt') return JSON.stringify({ ...base, issuer: cutOrNull(p.issuer), kid: cutOrNull(p.kid), ...rest });
  return JSON.stringify({ ...base, ...rest });
}
