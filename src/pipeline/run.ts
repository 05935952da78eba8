/**
 * The request handler: checks → route match → the route's stages, with one
 * catch that turns any failure into a problem+json answer. `observe` runs
 * once, when the response ends or the connection closes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { CompiledRoute, Runtime } from '../config/compile.js';
import { GatewayError, toProblem } from '../errors.js';
import { RequestContext, type Decision } from './context.js';
import { observe, settleOrLog, type Observer } from './observe.js';
import { checkRequest } from './request-checks.js';

export interface PipelineHost {
  /** The configuration snapshot in force: captured once per request. */
  readonly runtime: Runtime;
  readonly observers: readonly Observer[];
  readonly log: Logger;
  /** True while shutting down: responses ask the client to close. */
  readonly draining: boolean;
  /** Called when a request starts and when it ends (in-flight accounting). */
  track(delta: 1 | -1): void;
  /** Optional gate in front of every request, e.g. audit.required when the audit log fails. */
  gate?(ctx: RequestContext): void;
}

export function matchRoute(ctx: RequestContext): void {
  const routes = ctx.runtime.routes;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    if (r.matchHost !== undefined && !r.matchHost(ctx.host)) continue;
    if (r.methods !== undefined && !r.methods.has(ctx.method)) continue;
    if (!r.matchPath(ctx.path)) continue;
    ctx.route = r;
    return;
  }
  throw new GatewayError('GW_ROUTE_NOT_FOUND', `no route for ${ctx.method} ${ctx.host}${ctx.path}`, { reason: 'no_route' });
}

export function decisionFor(err: GatewayError): Decision {
  return err.status >= 500 ? 'error' : 'deny';
}

/** Records a failure on the context and answers it, unless a response is already under way. */
export function fail(ctx: RequestContext, err: unknown, log: Logger): void {
  const gerr = err instanceof GatewayError ? err : new GatewayError('GW_INTERNAL', 'unexpected error', { cause: err });
  if (gerr.code === 'GW_INTERNAL') log.error({ err: gerr.cause ?? gerr, request_id: ctx.id }, 'unexpected error in request pipeline');
  answer(ctx, gerr);
}

/** Records a gateway error on the context and answers it as problem+json, unless a response is already under way. */
export function answer(ctx: RequestContext, gerr: GatewayError): void {
  ctx.decision ??= decisionFor(gerr);
  ctx.reason ??= gerr.reason;
  ctx.error = gerr;
  const res = ctx.res;
  // The client is gone (its request is recorded as 499 when it ends): nobody to answer.
  if (!res || res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const p = toProblem(gerr, ctx.id);
  ctx.status = p.status;
  p.headers['x-request-id'] = ctx.id;
  // A refused request never reads its body: close rather than drain it.
  const req = ctx.req;
  if (!req.complete && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)) p.headers.connection = 'close';
  res.writeHead(p.status, p.headers);
  res.end(ctx.method === 'HEAD' ? undefined : p.body);
}

/**
 * Runs the route's stages from `from`: synchronously while they return
 * nothing, continuing after a stage's promise settles (no promise at all for
 * a route whose stages are all synchronous). The decision is left to the
 * stages (a refusal, an upstream failure) and to settle() (allow, when none
 * of them refused).
 */
function runStages(ctx: RequestContext, log: Logger, from: number): void {
  const stages = ctx.route!.stages;
  try {
    for (let i = from; i < stages.length; i++) {
      const r = stages[i]!(ctx);
      if (r !== undefined) {
        r.then(
          () => runStages(ctx, log, i + 1),
          (err: unknown) => fail(ctx, err, log),
        );
        return;
      }
    }
  } catch (err) {
    fail(ctx, err, log);
  }
}

/** Where a response's 'close' listener finds its request (one shared listener, no closure per request). */
const kRequest = Symbol('gatehouse.request');

interface TrackedResponse extends ServerResponse {
  [kRequest]?: { ctx: RequestContext; host: PipelineHost } | undefined;
}

/** Requests that have ended and wait for their observers (observeEnded()). */
let ended: { ctx: RequestContext; host: PipelineHost }[] = [];

/**
 * The response closed (finished, or the connection went away): the request
 * has ended. Its outcome and duration are settled now; the observers (log
 * line, audit record, metrics) run for all the requests that ended in one
 * turn of the event loop together, once its I/O is done (issue 6: run in a
 * loop, their code stays hot instead of taking turns with the proxy's).
 * The request counts as in flight until then, so that a shutdown waits
 * for its record.
 */
function onResponseClose(this: TrackedResponse): void {
  const r = this[kRequest];
  if (r === undefined) return;
  this[kRequest] = undefined;
  r.ctx.exchange?.clientClosed();
  settleOrLog(r.ctx, r.host.log);
  ended.push(r);
  if (ended.length === 1) setImmediate(observeEnded);
}

/** Runs the observers of every request that has ended and not been observed yet. */
export function observeEnded(): void {
  while (ended.length > 0) {
    const batch = ended;
    ended = [];
    for (let i = 0; i < batch.length; i++) {
      const { ctx, host } = batch[i]!;
      observe(ctx, host.observers, host.log);
      host.track(-1);
    }
  }
}

/**
 * The handler of a listener. `routeOf` is for a listener that serves one
 * route of its own (the admin API): the route instead of a match against
 * the configuration's routes.
 */
export function createRequestHandler(host: PipelineHost, routeOf?: (rt: Runtime) => CompiledRoute): (req: IncomingMessage, res: ServerResponse, expectContinue?: boolean) => void {
  return (req, res, expectContinue = false) => {
    const ctx = new RequestContext(host.runtime, req, res, req.socket);
    ctx.expectContinue = expectContinue;
    host.track(1);
    (res as TrackedResponse)[kRequest] = { ctx, host };
    res.on('close', onResponseClose);
    if (host.draining) res.setHeader('connection', 'close');
    try {
      host.gate?.(ctx);
      checkRequest(ctx);
      if (routeOf === undefined) matchRoute(ctx);
      else ctx.route = routeOf(ctx.runtime);
      runStages(ctx, host.log, 0);
    } catch (err) {
      fail(ctx, err, host.log);
    }
  };
}
