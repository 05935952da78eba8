/**
 * WebSocket upgrades: the same checks, route match, authentication and rules
 * as any request, then the connection is handed to http-proxy. The
 * handshake has the upstream's `timeout` (504 past it); upgraded
 * connections close after 10 minutes without traffic and are closed when
 * the gateway shuts down.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import httpProxy from 'http-proxy';
import { GatewayError, rawProblemResponse, toProblem } from '../errors.js';
import type { Upstream } from '../upstream/upstream.js';
import { RequestContext } from './context.js';
import { observe } from './observe.js';
import { upstreamFailure, upstreamPath } from './proxy.js';
import { checkRequest } from './request-checks.js';
import { decisionFor, matchRoute, type PipelineHost } from './run.js';
import { upstreamRequestHeaders } from './transform.js';

export interface UpgradeHandler {
  handle(req: IncomingMessage, socket: Socket, head: Buffer): void;
  /** Closes every upgraded connection (shutdown). */
  closeAll(): void;
}

function reject(ctx: RequestContext, err: unknown): void {
  const gerr = err instanceof GatewayError ? err : new GatewayError('GW_INTERNAL', 'unexpected error', { cause: err });
  ctx.decision ??= decisionFor(gerr);
  ctx.reason ??= gerr.reason;
  ctx.error = gerr;
  const p = toProblem(gerr, ctx.id);
  ctx.status = p.status;
  const socket = ctx.socket;
  if (socket.writable) {
    socket.end(rawProblemResponse(p, ctx.id));
  }
  socket.destroySoon?.();
}

export function createUpgradeHandler(host: PipelineHost, idleTimeoutMs: () => number): UpgradeHandler {
  const proxy = httpProxy.createProxyServer({ ws: true, xfwd: false, changeOrigin: true, prependPath: false, ignorePath: false });
  const open = new Set<Socket>();
  proxy.on('error', (err, req, target) => {
    const ctx = (req as IncomingMessage & { gatehouse?: RequestContext }).gatehouse;
    if (!ctx) return;
    const upstream = ctx.route?.upstream as Upstream;
    const socket = target as Socket;
    // Once the upstream has answered (101 or otherwise), it is too late for a problem response.
    if (ctx.status !== 0) {
      socket.destroy();
      return;
    }
    reject(ctx, upstreamFailure(ctx, err, upstream));
  });
  proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => {
    const ctx = (req as IncomingMessage & { gatehouse?: RequestContext }).gatehouse;
    if (!ctx) return;
    // The handshake gets the upstream's timeout, as any request does (the upgraded connection then has the idle timeout).
    const upstream = ctx.route?.upstream as Upstream;
    const timer = setTimeout(() => {
      proxyReq.destroy(new GatewayError('GW_UPSTREAM_TIMEOUT', `upstream "${upstream.name}" did not answer the WebSocket handshake within ${upstream.timeoutMs} ms`, { reason: 'upstream_timeout' }));
    }, upstream.timeoutMs);
    proxyReq.once('close', () => clearTimeout(timer));
    proxyReq.once('upgrade', () => {
      clearTimeout(timer);
      ctx.status = 101;
    });
    proxyReq.once('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      ctx.status = res.statusCode ?? 502;
    });
  });
  const upstreamOpen = new Set<Socket>();
  proxy.on('open', (upstreamSocket: Socket) => {
    upstreamOpen.add(upstreamSocket);
    upstreamSocket.once('close', () => upstreamOpen.delete(upstreamSocket));
    upstreamSocket.setTimeout(idleTimeoutMs(), () => upstreamSocket.destroy());
  });

  return {
    handle(req, socket, head) {
      const ctx = new RequestContext(host.runtime, req, undefined, socket);
      host.track(1);
      socket.once('close', () => {
        host.track(-1);
        open.delete(socket);
        if (ctx.status === 0) ctx.status = 499;
        observe(ctx, host.observers, host.log);
      });
      socket.on('error', () => socket.destroy());
      const go = async () => {
        if (host.draining) throw new GatewayError('GW_SHUTTING_DOWN', 'draining', { reason: 'shutting_down' });
        host.gate?.(ctx);
        // checkRequest first: CONNECT (also sent here) and h2c get their own reasons.
        checkRequest(ctx);
        if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw new GatewayError('GW_BAD_REQUEST', 'only WebSocket upgrades are proxied', { reason: 'upgrade_refused' });
        matchRoute(ctx);
        const route = ctx.route!;
        for (const stage of route.guards) await stage(ctx);
        if (!route.upstream) throw new GatewayError('GW_BAD_REQUEST', `route "${route.name}" does not proxy WebSockets`, { reason: 'upgrade_refused' });
        const upstream = route.upstream;
        const headers: Record<string, string> = {};
        const pairs = upstreamRequestHeaders(ctx, true);
        for (let i = 0; i < pairs.length; i += 2) {
          const k = (pairs[i] as string).toLowerCase();
          headers[k] = headers[k] === undefined ? (pairs[i + 1] as string) : `${headers[k]}, ${pairs[i + 1]}`;
        }
        if (upstream.credentials) {
          const extra = await upstream.credentials.headers();
          for (let i = 0; i < extra.length; i += 2) headers[(extra[i] as string).toLowerCase()] = extra[i + 1] as string;
        }
        req.headers = headers;
        req.url = upstreamPath(ctx, upstream);
        ctx.upstream = upstream.name;
        (req as IncomingMessage & { gatehouse?: RequestContext }).gatehouse = ctx;
        open.add(socket);
        socket.setTimeout(idleTimeoutMs(), () => socket.destroy());
        proxy.ws(req, socket, head, { target: upstream.origin });
      };
      go().catch((err: unknown) => reject(ctx, err));
    },
    closeAll() {
      for (const s of open) s.destroy();
      for (const s of upstreamOpen) s.destroy();
      open.clear();
      upstreamOpen.clear();
    },
  };
}
