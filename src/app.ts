/**
 * The Gateway: wires a compiled configuration to listeners, swaps snapshots
 * on reload, and drains on shutdown. No I/O at import.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { compile, type Runtime } from './config/compile.js';
import { ConfigError, formatIssue, loadConfigFile } from './config/load.js';
import { Resources } from './config/resources.js';
import { rawProblemResponse, toProblem, GatewayError } from './errors.js';
import { createLogger, LineBatch } from './log.js';
import { accountsApiPlugin } from './admin/accounts-api.js';
import { auditPlugin } from './audit/plugin.js';
import { Metrics } from './metrics/metrics.js';
import { metricsPlugin } from './metrics/observe.js';
import { RequestContext } from './pipeline/context.js';
import { observe, requestLogger, type Observer } from './pipeline/observe.js';
import { createRequestHandler, observeEnded, type PipelineHost } from './pipeline/run.js';
import { createUpgradeHandler, type UpgradeHandler } from './pipeline/websocket.js';
import { FilePoll, type Stamps } from './util/file-poll.js';
import { clientErrorStatus, closeServer, createHttpsServer, listen, serverOptions, type ListenAddress } from './server/listen.js';

export interface GatewayOptions {
  configFile: string;
  log?: Logger;
  /** Reload when gateway.yaml changes on disk (default true). */
  watchConfig?: boolean;
}

export type AdminHandler = (req: IncomingMessage, res: ServerResponse, gw: Gateway) => void | Promise<void>;

export interface ReloadResult {
  ok: boolean;
  error?: ConfigError | Error;
}

/** A part of the gateway that hooks into its lifecycle (audit, metrics, admin API…). */
export type GatewayPlugin = (gw: Gateway) => void | Promise<void>;

const PLUGINS: GatewayPlugin[] = [metricsPlugin, auditPlugin, accountsApiPlugin];

/** How long shutdown waits for the requests it cut to end (and be recorded) before the audit log closes. */
const CUT_REQUESTS_WAIT_MS = 1_000;

/** True when `p` settles within `ms` milliseconds. */
async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

export class Gateway implements PipelineHost {
  readonly configFile: string;
  readonly log: Logger;
  readonly resources: Resources;
  readonly metrics: Metrics;
  runtime: Runtime;
  draining = false;
  readonly observers: Observer[] = [];
  readonly adminRoutes = new Map<string, AdminHandler>();
  readonly addresses: { http?: ListenAddress; https?: ListenAddress; admin?: ListenAddress } = {};
  /** Hooks run after every reload attempt, and before the final close. */
  readonly reloadHooks: ((r: ReloadResult, rt: Runtime) => void)[] = [];
  readonly closeHooks: (() => Promise<void> | void)[] = [];
  #gate: ((ctx: RequestContext) => void)[] = [];
  #inflight = 0;
  #idle: (() => void) | undefined;
  #servers: http.Server[] = [];
  #stopTls: (() => void) | undefined;
  #upgrade: UpgradeHandler | undefined;
  #reloading: Promise<ReloadResult> = Promise.resolve({ ok: true });
  #closing: Promise<void> | undefined;
  #filePoll: FilePoll | undefined;
  /** The per-request log lines, written in batches. */
  readonly #requestLines: LineBatch;

  private constructor(configFile: string, log: Logger, runtime: Runtime, resources: Resources, metrics: Metrics) {
    this.configFile = configFile;
    this.metrics = metrics;
    this.log = log;
    this.runtime = runtime;
    this.resources = resources;
    this.#requestLines = new LineBatch(log);
  }

  /**
   * Runs the observers of the requests that have ended and wait for them
   * (run.ts observeEnded()), then writes the per-request log lines still
   * queued (they are written in batches). Their audit records are then in
   * the audit log's buffer.
   */
  flushLogs(): void {
    observeEnded();
    this.#requestLines.flush();
  }

  /** Loads, compiles and listens. Throws ConfigError for a broken configuration. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    const log = opts.log ?? createLogger();
    const configFile = resolve(opts.configFile);
    const resources = new Resources((err, key) => log.warn({ err, resource: key }, 'resource did not close cleanly'));
    // The files this load reads, each stamped before it is read: a change made at any time after is seen.
    const stamps: Stamps = new Map();
    const { config, source } = loadConfigFile(configFile, process.env, stamps);
    const scope = resources.scope();
    const metrics = new Metrics();
    let runtime: Runtime;
    try {
      runtime = compile(config, source, { scope, stamps, log, metrics, mode: 'serve' });
    } catch (err) {
      await resources.rollback(scope);
      throw err;
    }
    await resources.commit(scope);
    const gw = new Gateway(configFile, log, runtime, resources, metrics);
    for (const w of runtime.warnings) log.warn({ config: formatIssue(w) }, 'configuration warning');
    gw.observers.push(requestLogger(log, gw.#requestLines));
    try {
      for (const plugin of PLUGINS) await plugin(gw);
      await gw.#listen();
    } catch (err) {
      await gw.close();
      throw err;
    }
    if (opts.watchConfig !== false) gw.#watchConfig(stamps);
    return gw;
  }

  /** Adds a check run before every request (e.g. audit.required). Throw a GatewayError to refuse. */
  addGate(g: (ctx: RequestContext) => void): void {
    this.#gate.push(g);
  }

  gate(ctx: RequestContext): void {
    for (const g of this.#gate) g(ctx);
  }

  track(delta: 1 | -1): void {
    this.#inflight += delta;
    if (this.#inflight === 0) this.#idle?.();
  }

  get inflight(): number {
    return this.#inflight;
  }

  async #listen(): Promise<void> {
    const rt = this.runtime;
    const server = rt.config.server;
    const handler = createRequestHandler(this);
    this.#upgrade = createUpgradeHandler(this, () => 10 * 60_000);
    const attach = (s: http.Server) => {
      s.on('request', handler);
      s.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => handler(req, res, true));
      s.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#upgrade!.handle(req, socket, head));
      // Without a listener Node drops CONNECT silently; answer it 400 with a record like any refusal.
      s.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#upgrade!.handle(req, socket, head));
      s.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#clientError(err, socket));
      if (rt.limits.maxConnections !== undefined) s.maxConnections = rt.limits.maxConnections;
      this.#servers.push(s);
    };
    if (server.listen) {
      const s = http.createServer(serverOptions(rt.limits));
      attach(s);
      this.addresses.http = await listen(s, server.listen);
      this.log.info({ address: `http://${this.addresses.http.host}:${this.addresses.http.port}` }, 'listening (HTTP)');
    }
    if (server.tls) {
      const { server: s, stopWatching } = createHttpsServer(server.tls, rt.source.baseDir, rt.limits, this.log);
      this.#stopTls = stopWatching;
      attach(s);
      this.addresses.https = await listen(s, server.tls.listen);
      this.log.info({ address: `https://${this.addresses.https.host}:${this.addresses.https.port}` }, 'listening (HTTPS)');
    }
    if (server.admin) {
      const s = http.createServer((req, res) => this.#admin(req, res));
      this.#servers.push(s);
      this.addresses.admin = await listen(s, server.admin);
      this.log.info({ address: `http://${this.addresses.admin.host}:${this.addresses.admin.port}` }, 'listening (admin)');
    }
    if (!server.listen && !server.tls) this.log.warn('no listener configured: set server.listen or server.tls');
  }

  #clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const what = clientErrorStatus(err);
    if (!what || !socket.writable || (socket as Socket & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    // A request Node could not parse still leaves one record.
    const req = { method: 'UNKNOWN', headers: {}, rawHeaders: [], url: '', httpVersion: '1.1' } as unknown as IncomingMessage;
    const ctx = new RequestContext(this.runtime, req, undefined, socket);
    const code = what.status === 431 ? 'GW_HEADERS_TOO_LARGE' : what.status === 408 ? 'GW_REQUEST_TIMEOUT' : 'GW_BAD_REQUEST';
    const p = toProblem(new GatewayError(code, err.message, { reason: what.reason }), ctx.id);
    ctx.status = p.status;
    ctx.decision = 'deny';
    ctx.reason = what.reason;
    socket.end(rawProblemResponse(p, ctx.id));
    observe(ctx, this.observers, this.log);
  }

  async #admin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] as string;
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      if (path === '/healthz') return json(200, { status: 'ok' });
      if (path === '/readyz') {
        const waiting = this.runtime.notReady();
        if (this.draining) return json(503, { status: 'draining' });
        return waiting.length ? json(503, { status: 'not ready', waiting_for: waiting }) : json(200, { status: 'ready' });
      }
      for (const [prefix, h] of this.adminRoutes) {
        if (path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : prefix + '/')) return await h(req, res, this);
      }
      json(404, { status: 404, title: 'Not Found' });
    } catch (err) {
      this.log.error({ err, path }, 'admin request failed');
      if (!res.headersSent) json(500, { status: 500, title: 'Internal Server Error' });
      else res.destroy();
    }
  }

  /** Polls gateway.yaml and the `{ file }` secrets it read, against their state when read. */
  #watchConfig(stamps: Stamps): void {
    this.#filePoll = new FilePoll((changed) => void this.reload(`file changed: ${changed.join(', ')}`));
    this.#filePoll.track(stamps);
  }

  /** Re-reads gateway.yaml; a broken file is refused and the old snapshot keeps serving. */
  reload(trigger = 'SIGHUP'): Promise<ReloadResult> {
    this.#reloading = this.#reloading.then(() => this.#reloadNow(trigger));
    return this.#reloading;
  }

  async #reloadNow(trigger: string): Promise<ReloadResult> {
    if (this.draining) return { ok: false, error: new Error('shutting down') };
    const scope = this.resources.scope();
    let result: ReloadResult;
    const stamps: Stamps = new Map();
    try {
      const { config, source } = loadConfigFile(this.configFile, process.env, stamps);
      const next = compile(config, source, { scope, stamps, log: this.log, metrics: this.metrics, mode: 'serve' });
      const prev = this.runtime;
      this.runtime = next;
      await this.resources.commit(scope);
      this.#applyLimits(prev, next);
      for (const w of next.warnings) this.log.warn({ config: formatIssue(w) }, 'configuration warning');
      this.log.info({ trigger, routes: next.routes.length }, 'configuration reloaded');
      result = { ok: true };
    } catch (err) {
      await this.resources.rollback(scope);
      const errors = err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message];
      this.log.error({ trigger, errors }, 'configuration reload refused; the previous configuration keeps serving');
      result = { ok: false, error: err as Error };
    }
    // Refused or not, watch what this attempt read: fixing the file (or a secret it names) retries.
    this.#filePoll?.track(stamps);
    for (const h of this.reloadHooks) {
      try {
        h(result, this.runtime);
      } catch (err) {
        this.log.error({ err }, 'reload hook failed');
      }
    }
    return result;
  }

  #applyLimits(prev: Runtime, next: Runtime): void {
    const a = prev.config.server;
    const b = next.config.server;
    if (JSON.stringify([a.listen, a.tls, a.admin, a.limits.max_header_size]) !== JSON.stringify([b.listen, b.tls, b.admin, b.limits.max_header_size])) {
      this.log.warn('listener addresses, TLS files or max_header_size changed: they take effect after a restart');
    }
    for (const s of this.#servers) {
      if (s.listening && this.addresses.admin && s.address() && (s.address() as { port: number }).port === this.addresses.admin.port) continue;
      s.headersTimeout = next.limits.headersTimeout;
      s.requestTimeout = next.limits.requestTimeout;
      s.keepAliveTimeout = next.limits.keepAliveTimeout;
      if (next.limits.maxConnections !== undefined) s.maxConnections = next.limits.maxConnections;
    }
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish (up to
   * drain_timeout), close upgraded connections, run close hooks (audit
   * flush), close upstream pools and stores.
   */
  close(): Promise<void> {
    this.#closing ??= this.#closeNow();
    return this.#closing;
  }

  /** Settles when no request is in flight (at once when none is). */
  #drained(): Promise<void> {
    return this.#inflight === 0 ? Promise.resolve() : new Promise<void>((r) => (this.#idle = r));
  }

  async #closeNow(): Promise<void> {
    this.draining = true;
    this.#filePoll?.close();
    this.#stopTls?.();
    const closed = Promise.all(this.#servers.map(closeServer));
    // Upgraded connections never "finish": close them now rather than after drain_timeout.
    this.#upgrade?.closeAll();
    const poll = setInterval(() => this.#servers.forEach((s) => s.closeIdleConnections()), 100);
    if (!(await within(this.#drained(), this.runtime.limits.drainTimeout))) {
      this.log.warn({ inflight: this.#inflight }, 'drain timeout: closing the remaining connections');
    }
    this.#upgrade?.closeAll();
    for (const s of this.#servers) s.closeAllConnections();
    clearInterval(poll);
    // The requests just cut end a turn or two later: their records must reach the audit log before it closes.
    if (!(await within(this.#drained(), CUT_REQUESTS_WAIT_MS))) {
      this.log.error({ inflight: this.#inflight }, 'requests still open after their connections were closed: their audit records may be missing');
    }
    await closed;
    for (const h of this.closeHooks) {
      try {
        await h();
      } catch (err) {
        this.log.error({ err }, 'close hook failed');
      }
    }
    await this.resources.closeAll();
    this.#requestLines.flush();
  }
}
