/**
 * Runs once when a request ends (response finished, or connection closed):
 * settles the decision and status, then hands the context to every
 * observer (log, audit, metrics). Never throws.
 */
import type { Logger } from 'pino';
import { recordOf } from '../audit/record.js';
import { LineBatch } from '../log.js';
import type { RequestContext } from './context.js';

export type Observer = (ctx: RequestContext) => void;

/** nginx's convention for "the client closed the connection before a response". */
export const CLIENT_CLOSED = 499;

/** Settles the request's outcome once: its duration is the time until the first call. */
export function settle(ctx: RequestContext): void {
  if (ctx.settled) return;
  ctx.settled = true;
  ctx.durationMs = ctx.elapsedMs();
  const res = ctx.res;
  if (res && ctx.status === 0) ctx.status = res.headersSent ? res.statusCode : CLIENT_CLOSED;
  if (res && !res.writableFinished && ctx.reason === undefined) ctx.reason = 'client_aborted';
  if (ctx.decision === undefined) {
    if (ctx.status === CLIENT_CLOSED) ctx.decision = 'error';
    else ctx.decision = ctx.route ? 'allow' : 'deny';
  }
  ctx.reason ??= ctx.decision === 'allow' ? (ctx.route?.public ? 'public' : 'granted') : 'unknown';
}

/** settle(), reporting rather than throwing a failure: the request still gets its record. */
export function settleOrLog(ctx: RequestContext, log: Logger): void {
  try {
    settle(ctx);
  } catch (err) {
    log.error({ err }, 'cannot settle request outcome');
  }
}

export function observe(ctx: RequestContext, observers: readonly Observer[], log: Logger): void {
  if (ctx.observed) return;
  ctx.observed = true;
  settleOrLog(ctx, log);
  for (const o of observers) {
    try {
      o(ctx);
    } catch (err) {
      log.error({ err, request_id: ctx.id }, 'request observer failed');
    }
  }
}

/**
 * The per-request log line (info): the request's audit record — the same
 * bytes, serialized once (recordOf) — behind the logger's level, service
 * and `msg: "request"`, so never a query string, token or header value
 * other than User-Agent. Lines are written in batches (LineBatch).
 * A 5xx with an operator-facing error goes through the redacting logger at
 * warn instead, with `err`.
 */
export function requestLogger(log: Logger, lines: LineBatch = new LineBatch(log)): Observer {
  const info = log.levels.values.info as number;
  return (ctx) => {
    if (ctx.status >= 500 && ctx.error) {
      log.warn(
        {
          request_id: ctx.id,
          method: ctx.method,
          path: ctx.path || undefined,
          route: ctx.route?.name,
          status: ctx.status,
          decision: ctx.decision,
          reason: ctx.reason,
          principal: ctx.principal ? `${ctx.principal.kind}:${ctx.principal.subject}` : undefined,
          upstream: ctx.upstream,
          duration_ms: Math.round(ctx.durationMs * 1000) / 1000,
          client_ip: ctx.clientIp,
          err: ctx.error,
        },
        'request failed',
      );
    } else if (log.levelVal <= info) {
      lines.push(recordOf(ctx));
    }
  };
}
