/**
 * A compiled upstream: its origin, base path, undici connection pool and,
 * where the upstream demands its own, the credentials to attach.
 */
import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/schema.js';
import { DeadlineQueue } from './deadlines.js';

/** What an upstream's `credentials:` block compiles to (see src/upstream/credentials.ts). */
export interface UpstreamCredentials {
  /** Header pairs to add to each forwarded request (may fetch a token first). */
  headers(): string[] | Promise<string[]>;
  /**
   * The upstream rejected the credentials (e.g. 401): forget them. Returns
   * true when a retry with fresh credentials makes sense.
   */
  rejected?(status: number, sent: string[]): boolean;
  /** The upstream answered a request made with `sent` with a status not in `retryOn`. */
  accepted?(sent: string[]): void;
  /** Statuses that count as a rejection of the credentials. */
  readonly retryOn?: ReadonlySet<number>;
  /** Request bodies up to this size are kept in memory so that a rejected request can be retried. */
  readonly retryBodyLimit?: number;
  close?(): Promise<void> | void;
}

export class Upstream {
  readonly name: string;
  readonly origin: string;
  /** Path prefix of the upstream URL, without trailing "/" ("" for none). */
  readonly basePath: string;
  readonly timeoutMs: number;
  readonly pool: Pool;
  /** Whole-response deadlines of the exchanges under way (proxy.ts). */
  readonly deadlines: DeadlineQueue;
  readonly credentials: UpstreamCredentials | undefined;

  constructor(name: string, cfg: UpstreamConfig, credentials?: UpstreamCredentials) {
    const url = new URL(cfg.url);
    this.name = name;
    this.credentials = credentials;
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.timeoutMs = cfg.timeout;
    this.deadlines = new DeadlineQueue(cfg.timeout);
    this.pool = new Pool(url.origin, {
      connections: cfg.connections,
      pipelining: 1,
      keepAliveTimeout: 4_000,
      connectTimeout: cfg.connect_timeout,
      // The whole-response timeout is enforced by the proxy stage; these are backstops.
      headersTimeout: cfg.timeout + 1_000,
      bodyTimeout: cfg.timeout + 1_000,
    });
  }

  async close(): Promise<void> {
    this.deadlines.close();
    await this.credentials?.close?.();
    await this.pool.close().catch(() => this.pool.destroy());
  }
}
