/**
 * Runs once when a request ends (response finished, or connection closed):
 * settles the decision and status, then hands the context to every
 * observer (log, audit, metrics). Never throws.
 */
import type { Logger } from 'pino';
import type { RequestContext } from './context.js';

export type Observer = (ctx: RequestContext) => void;

/** nginx's convention for "the client closed the connection before a response". */
export const CLIENT_CLOSED = 499;

export function settle(ctx: RequestContext): void {
  const res = ctx.res;
  if (res && ctx.status === 0) ctx.status = res.headersSent ? res.statusCode : CLIENT_CLOSED;
  if (res && !res.writableFinished && ctx.reason === undefined) ctx.reason = 'client_aborted';
  if (ctx.decision === undefined) {
    if (ctx.status === CLIENT_CLOSED) ctx.decision = 'error';
    else ctx.decision = ctx.route ? 'allow' : 'deny';
  }
  ctx.reason ??= ctx.decision === 'allow' ? (ctx.route?.public ? 'public' : 'granted') : 'unknown';
}

export function observe(ctx: RequestContext, observers: readonly Observer[], log: Logger): void {
  if (ctx.observed) return;
  ctx.observed = true;
  try {
    settle(ctx);
  } catch (err) {
    log.error({ err }, 'cannot settle request outcome');
  }
  for (const o of observers) {
    try {
      o(ctx);
    } catch (err) {
      log.error({ err, request_id: ctx.id }, 'request observer failed');
    }
  }
}

/**
 * The per-request log line (info), without query string or any credential.
 *
 * The line has fixed keys and scalar values only, so no redaction path of
 * src/log.ts can match it: it goes through a child logger without
 * redaction, which writes the same bytes at well under half the CPU cost
 * (pino's redaction walks every path per line; issue 6 profile). Failure
 * lines carry `err` and keep the redacting logger.
 */
export function requestLogger(log: Logger): Observer {
  const plain = log.child({}, { redact: [] });
  return (ctx) => {
    const line = {
      request_id: ctx.id,
      method: ctx.method,
      path: ctx.path || undefined,
      route: ctx.route?.name,
      status: ctx.status,
      decision: ctx.decision,
      reason: ctx.reason,
      principal: ctx.principal ? `${ctx.principal.kind}:${ctx.principal.subject}` : undefined,
      upstream: ctx.upstream,
      duration_ms: Math.round(ctx.elapsedMs() * 1000) / 1000,
      client_ip: ctx.clientIp,
    };
    if (ctx.status >= 500 && ctx.error) log.warn({ ...line, err: ctx.error }, 'request failed');
    else {
      // Follow the parent's level should it change at run time.
      if (plain.level !== log.level) plain.level = log.level;
      plain.info(line, 'request');
    }
  };
}
