/**
 * RequestContext: everything one request accumulates on its way through the
 * pipeline, and what `observe` turns into an audit record, metrics and a log
 * line when it ends. Created once per request; stages fill it in.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Principal } from '../authn/authenticator.js';
import type { TokenMemo } from '../authn/token-memo.js';
import type { CompiledRoute, Runtime } from '../config/compile.js';
import { requestId } from '../util/request-id.js';

export type Decision = 'allow' | 'deny' | 'error';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

export class RequestContext {
  readonly id: string;
  /** When the request arrived: performance.now() milliseconds. */
  readonly start = performance.now();
  /** When the request arrived: epoch milliseconds. */
  readonly time = Date.now();
  readonly req: IncomingMessage;
  /** Undefined for WebSocket upgrades, which answer on `socket`. */
  readonly res: ServerResponse | undefined;
  readonly socket: Socket;
  readonly runtime: Runtime;
  readonly secure: boolean;
  /** The TCP peer address. */
  readonly peerIp: string;
  /** The client address: the peer, or from X-Forwarded-For when the peer is a trusted proxy. */
  clientIp: string;
  trustedPeer = false;
  method: string;
  /** Normalized path, as matched (before strip_prefix). */
  path = '';
  /** Query string with its "?", forwarded unchanged. */
  query = '';
  host = '';
  route: CompiledRoute | undefined = undefined;
  principal: Principal | undefined = undefined;
  /** Key id of the presented service-account token (never the token), set once parsed: refused tokens are traceable too. */
  keyId: string | undefined = undefined;
  /** What is known of the bearer token being authenticated, kept on the connection (token-memo.ts); set by the authenticate stage, for its token only. */
  tokenMemo: TokenMemo | undefined = undefined;
  /** Effective roles on the route, once authorized. */
  roles: Set<string> | undefined = undefined;
  decision: Decision | undefined = undefined;
  reason: string | undefined = undefined;
  status = 0;
  /** Upstream name and timing, once forwarded. */
  upstream: string | undefined = undefined;
  upstreamMs: number | undefined = undefined;
  /** Upstream failure kind for metrics: connect, timeout, reset, credentials… */
  upstreamError: string | undefined = undefined;
  /** Operator-facing error, for the log only. */
  error: unknown = undefined;
  /** The client sent `Expect: 100-continue`, not yet answered. */
  expectContinue = false;
  /** Set when settle() has run: the outcome and duration are final. */
  settled = false;
  /** Set when observe() has run: exactly one record per request. */
  observed = false;
  /** The upstream exchange under way, told when the client connection closes (proxy.ts). */
  exchange: { clientClosed(): void } | undefined = undefined;
  /** The request's audit record (JSON, without `prev`), serialized once when it ends: see recordOf(). */
  record: string | undefined = undefined;

  constructor(runtime: Runtime, req: IncomingMessage, res: ServerResponse | undefined, socket: Socket) {
    this.runtime = runtime;
    this.req = req;
    this.res = res;
    this.socket = socket;
    this.method = req.method ?? 'GET';
    this.secure = 'encrypted' in socket && (socket as { encrypted?: boolean }).encrypted === true;
    this.peerIp = normalizeIp(socket.remoteAddress ?? '');
    this.clientIp = this.peerIp;
    const given = req.headers['x-request-id'];
    this.id = typeof given === 'string' && REQUEST_ID.test(given) ? given : requestId(this.time);
  }

  /** How long the request took, in milliseconds: set once when it ends (settle()), for the record and the metrics alike. */
  durationMs = 0;

  /** Milliseconds since the request arrived. */
  elapsedMs(): number {
    return performance.now() - this.start;
  }
}

/** `::ffff:127.0.0.1` → `127.0.0.1`. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
