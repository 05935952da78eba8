/**
 * The only place that talks to upstreams: streams the request to the route's
 * upstream through its undici pool and the response back, with backpressure
 * both ways. Upstream faults become 502/504 GatewayErrors while nothing has
 * been sent to the client; after that, the client connection is cut.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors.js';
import { stripPrefix } from '../routing/router.js';
import type { Upstream, UpstreamCredentials } from '../upstream/upstream.js';
import type { RequestContext } from './context.js';
import { answer } from './run.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './transform.js';

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);
const TIMEOUT_ERRORS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Maps an undici failure to the client-facing error; records the kind for metrics. */
export function upstreamFailure(ctx: RequestContext, err: unknown, upstream: Upstream): GatewayError {
  if (err instanceof GatewayError) {
    if (err.code === 'GW_UPSTREAM_TIMEOUT') ctx.upstreamError = 'timeout';
    else if (err.code === 'GW_UPSTREAM_CREDENTIALS') ctx.upstreamError ??= 'credentials';
    return err;
  }
  const code = (err as { code?: string } | undefined)?.code ?? '';
  if (TIMEOUT_ERRORS.has(code)) {
    ctx.upstreamError = 'timeout';
    return new GatewayError('GW_UPSTREAM_TIMEOUT', `upstream "${upstream.name}" timed out`, { reason: 'upstream_timeout', cause: err });
  }
  ctx.upstreamError = CONNECT_ERRORS.has(code) ? 'connect' : 'reset';
  return new GatewayError('GW_UPSTREAM_UNAVAILABLE', `upstream "${upstream.name}" failed: ${code || (err as Error)?.message}`, {
    reason: ctx.upstreamError === 'connect' ? 'upstream_unreachable' : 'upstream_reset',
    cause: err,
  });
}

/** Path as the upstream sees it: base path + normalized path (strip_prefix applied) + query. */
export function upstreamPath(ctx: RequestContext, upstream: Upstream): string {
  const prefix = ctx.route?.stripPrefix;
  // Exactly the prefix maps to the base path itself (`/api` → `/legacy`); `/api/` keeps its slash.
  if (prefix !== undefined && ctx.path === prefix) return (upstream.basePath || '/') + ctx.query;
  return upstream.basePath + stripPrefix(ctx.path, prefix) + ctx.query;
}

function hasBody(ctx: RequestContext): boolean {
  const h = ctx.req.headers;
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

/** Streams a request body, refusing it once it exceeds max_body (for bodies without Content-Length). */
async function* limitedBody(ctx: RequestContext, max: number): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) throw new GatewayError('GW_PAYLOAD_TOO_LARGE', 'streamed body exceeds max_body', { reason: 'body_too_large' });
    yield chunk;
  }
}

export interface ForwardOptions {
  /** A buffered body (used for credential retries) or a prepared stream; otherwise the request streams. */
  body?: Buffer | Readable | undefined;
  /** Extra header pairs, e.g. upstream credentials. */
  extraHeaders?: string[] | undefined;
  /** Called with the status before anything is written; returning true suppresses the response (for a retry). */
  intercept?: ((status: number) => boolean) | undefined;
}

/**
 * One request to an upstream and its response relayed to the client: the
 * undici dispatch handler, with the whole-response deadline and the
 * client's going away. One object per exchange, its methods shared (issue
 * 6: the closures this replaces were a good part of the per-request
 * garbage). Without `resolve`/`reject` (a plain proxied route) nothing waits
 * for it: a failure is answered here.
 */
class Exchange implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | undefined = undefined;
  timedOut = false;
  #settled = false;
  #intercepted = false;
  readonly #ticket: number;
  readonly #started = performance.now();

  constructor(
    readonly ctx: RequestContext,
    readonly res: ServerResponse,
    readonly upstream: Upstream,
    readonly intercept: ((status: number) => boolean) | undefined,
    readonly resolve: ((r: 'done' | 'intercepted') => void) | undefined,
    readonly reject: ((err: unknown) => void) | undefined,
  ) {
    this.#ticket = upstream.deadlines.add(this, this.#started);
    ctx.exchange = this;
  }

  /** The upstream's timeout passed before the response was complete. */
  expired(): void {
    this.timedOut = true;
    this.controller?.abort(new Error('upstream timeout'));
  }

  /** The client connection closed (run.ts): abort the upstream request unless the response was complete. */
  clientClosed(): void {
    if (!this.res.writableFinished) {
      this.ctx.reason ??= 'client_aborted';
      this.controller?.abort(new Error('client went away'));
    }
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    if (this.timedOut) c.abort(new Error('upstream timeout'));
  }

  onResponseStart(c: Dispatcher.DispatchController, statusCode: number, rheaders: IncomingHttpHeaders): void {
    if (this.intercept?.(statusCode)) {
      this.#intercepted = true;
      c.abort(new Error('intercepted'));
      return;
    }
    this.ctx.status = statusCode;
    this.res.writeHead(statusCode, clientResponseHeaders(this.ctx, rheaders));
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      // A response that cannot be written any more never drains: paused, the request would hold its connection until the timeout.
      if (hungUp(this.res)) return c.abort(new Error('client went away'));
      c.pause();
      this.res.once('drain', () => c.resume());
    }
  }

  onResponseEnd(): void {
    this.res.end();
    this.finish(undefined);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.finish(this.#intercepted ? undefined : err);
  }

  finish(err: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.upstream.deadlines.remove(this.#ticket);
    const ctx = this.ctx;
    if (ctx.exchange === this) ctx.exchange = undefined;
    ctx.upstreamMs = performance.now() - this.#started;
    if (err === undefined) return this.resolve?.(this.#intercepted ? 'intercepted' : 'done');
    const upstream = this.upstream;
    if (this.timedOut) err = new GatewayError('GW_UPSTREAM_TIMEOUT', `upstream "${upstream.name}" timed out after ${upstream.timeoutMs} ms`, { reason: 'upstream_timeout' });
    const gerr = err instanceof GatewayError && err.code === 'GW_PAYLOAD_TOO_LARGE' ? err : upstreamFailure(ctx, err, upstream);
    if (this.res.headersSent) {
      // Too late for an error response: cut the client connection so that it sees a truncated body.
      ctx.decision = 'error';
      ctx.reason = gerr.reason;
      ctx.error = gerr;
      this.res.destroy();
      return this.resolve?.('done');
    }
    if (this.reject) this.reject(gerr);
    else answer(ctx, gerr);
  }
}

const NO_OPTIONS: ForwardOptions = {};

/** The client connection is closed (or closing): nothing more can be written to it. */
function hungUp(res: ServerResponse): boolean {
  return res.destroyed || res.socket?.destroyed === true;
}

/** Forwards the request; resolves when the response has been fully relayed (or intercepted). */
export function forward(ctx: RequestContext, upstream: Upstream, opts: ForwardOptions = NO_OPTIONS): Promise<'done' | 'intercepted'> {
  return new Promise((resolve, reject) => dispatch(ctx, upstream, opts, resolve, reject));
}

/**
 * Sends the request upstream. With `resolve`/`reject`, they are told the
 * outcome; without, a failure is answered to the client (answer()).
 */
function dispatch(
  ctx: RequestContext,
  upstream: Upstream,
  opts: ForwardOptions,
  resolve: ((r: 'done' | 'intercepted') => void) | undefined,
  reject: ((err: unknown) => void) | undefined,
): void {
  const res = ctx.res;
  if (!res) throw new Error('forward() needs a response');
  if (hungUp(res)) {
    // The caller hung up while an earlier stage waited (a token fetch, a JWT check): nobody to forward for.
    ctx.reason ??= 'client_aborted';
    resolve?.('done');
    return;
  }
  ctx.upstream = upstream.name;
  let headers = upstreamRequestHeaders(ctx, false);
  if (opts.extraHeaders) headers = withCredentialHeaders(headers, opts.extraHeaders);
  let body: Buffer | Readable | null = null;
  if (opts.body !== undefined) {
    body = opts.body;
  } else if (hasBody(ctx)) {
    if (ctx.expectContinue) {
      ctx.expectContinue = false;
      res.writeContinue();
    }
    body = ctx.req.headers['content-length'] !== undefined ? ctx.req : Readable.from(limitedBody(ctx, ctx.runtime.limits.maxBody), { objectMode: false });
  }
  const x = new Exchange(ctx, res, upstream, opts.intercept, resolve, reject);
  try {
    upstream.pool.dispatch({ path: upstreamPath(ctx, upstream), method: ctx.method, headers, body, idempotent: false, blocking: false }, x);
  } catch (err) {
    x.finish(err);
  }
}

/**
 * The terminal stage of a proxied route. Without upstream credentials
 * nothing follows the exchange, so no promise waits for it (issue 6).
 */
export function proxyStage(ctx: RequestContext): Promise<unknown> | undefined {
  const upstream = ctx.route?.upstream as Upstream;
  const creds = upstream.credentials;
  if (creds) return forwardWithCredentials(ctx, upstream, creds);
  dispatch(ctx, upstream, NO_OPTIONS, undefined, undefined);
  return undefined;
}

/**
 * `headers` plus the credential pairs, dropping any header of the caller's
 * with a credential's name (a caller must not smuggle its own X-Api-Key).
 */
function withCredentialHeaders(headers: string[], extra: string[]): string[] {
  const names = new Set<string>();
  for (let i = 0; i < extra.length; i += 2) names.add((extra[i] as string).toLowerCase());
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (!names.has((headers[i] as string).toLowerCase())) out.push(headers[i] as string, headers[i + 1] as string);
  out.push(...extra);
  return out;
}

async function credentialHeaders(ctx: RequestContext, upstream: Upstream, creds: UpstreamCredentials): Promise<string[]> {
  try {
    return await creds.headers();
  } catch (err) {
    ctx.upstream = upstream.name;
    throw upstreamFailure(ctx, err, upstream);
  }
}

function clientGone(ctx: RequestContext, err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  ctx.reason ??= 'client_aborted';
  return new GatewayError('GW_BAD_REQUEST', 'the client went away while sending its body', { reason: 'client_aborted', cause: err });
}

/** Reads a body of known, small size into memory so that it can be sent twice. */
async function bufferBody(ctx: RequestContext, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > length) break;
      chunks.push(chunk);
    }
  } catch (err) {
    throw clientGone(ctx, err);
  }
  if (n !== length) throw new GatewayError('GW_BAD_REQUEST', 'request body does not match its Content-Length', { reason: 'body_length_mismatch' });
  return Buffer.concat(chunks, n);
}

/**
 * A chunked body: kept whole when it ends within `limit` bytes; otherwise
 * what was read goes on as the head of a stream of the rest (max_body still
 * enforced), and the request cannot be retried.
 */
async function keepChunkedBody(ctx: RequestContext, limit: number): Promise<Buffer | Readable> {
  const max = ctx.runtime.limits.maxBody;
  const it = (ctx.req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let n = 0;
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) return Buffer.concat(head, n);
      head.push(r.value);
      n += r.value.length;
      if (n > max) throw new GatewayError('GW_PAYLOAD_TOO_LARGE', 'streamed body exceeds max_body', { reason: 'body_too_large' });
      if (n > limit) break;
    }
  } catch (err) {
    throw clientGone(ctx, err);
  }
  async function* rest(): AsyncGenerator<Buffer> {
    yield* head;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      n += r.value.length;
      if (n > max) throw new GatewayError('GW_PAYLOAD_TOO_LARGE', 'streamed body exceeds max_body', { reason: 'body_too_large' });
      yield r.value;
    }
  }
  return Readable.from(rest(), { objectMode: false });
}

/**
 * The body to send with credentials: a Buffer when it may be sent twice, a
 * stream or undefined (forward() streams the request) when it may not.
 */
async function keepBody(ctx: RequestContext, limit: number): Promise<{ body: Buffer | Readable | undefined; replayable: boolean }> {
  if (!hasBody(ctx)) return { body: undefined, replayable: true };
  const h = ctx.req.headers;
  const chunked = h['transfer-encoding'] !== undefined;
  const length = chunked ? NaN : Number(h['content-length']);
  if (!chunked && !(Number.isSafeInteger(length) && length <= limit)) return { body: undefined, replayable: false };
  if (ctx.expectContinue) {
    ctx.expectContinue = false;
    ctx.res?.writeContinue();
  }
  const body = chunked ? await keepChunkedBody(ctx, limit) : await bufferBody(ctx, length);
  return { body, replayable: Buffer.isBuffer(body) };
}

/**
 * Forwards with upstream credentials. When the upstream rejects them (a
 * status in `retryOn`, 401 by default) the credentials are dropped and the
 * request is sent once more with fresh ones — only when that is safe: no
 * body, or a body up to `retryBodyLimit`, buffered before the first attempt.
 * A larger body is not kept: its rejection passes through. A second rejection passes through too, as a credentials problem.
 */
async function forwardWithCredentials(ctx: RequestContext, upstream: Upstream, creds: UpstreamCredentials): Promise<void> {
  const sent = await credentialHeaders(ctx, upstream, creds);
  const retryOn = creds.retryOn;
  if (!retryOn || retryOn.size === 0 || !creds.rejected) {
    await forward(ctx, upstream, { extraHeaders: sent });
    return;
  }
  const { body, replayable } = await keepBody(ctx, creds.retryBodyLimit ?? 0);
  const onStatus = (headers: string[], last: boolean) => (status: number) => {
    if (!retryOn.has(status)) {
      creds.accepted?.(headers);
      return false;
    }
    const retry = creds.rejected!(status, headers);
    if (last || !retry || !replayable) {
      // Passed to the client as it is (DESIGN §10), and recorded as a credentials problem.
      ctx.upstreamError = 'credentials';
      ctx.reason = 'upstream_credentials_rejected';
      return false;
    }
    return true;
  };
  if ((await forward(ctx, upstream, { body, extraHeaders: sent, intercept: onStatus(sent, false) })) === 'done') return;
  if (ctx.res?.destroyed) return; // the client went away meanwhile: nothing to retry for
  const fresh = await credentialHeaders(ctx, upstream, creds);
  await forward(ctx, upstream, { body, extraHeaders: fresh, intercept: onStatus(fresh, true) });
}
