import type { RequestContext } from './context.js';

/** The terminal stage of a `respond:` route: a fixed answer from the gateway itself. */
export function respondStage(ctx: RequestContext): void {
  const r = ctx.route?.respond;
  const res = ctx.res;
  if (!r || !res) return;
  ctx.status = r.status;
  res.writeHead(r.status, { ...r.headers, 'content-length': String(r.body.length), 'x-request-id': ctx.id });
  res.end(ctx.method === 'HEAD' ? undefined : r.body);
}
