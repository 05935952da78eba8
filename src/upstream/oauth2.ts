/**
 * The token manager of one upstream with `oauth2_client_credentials`: keeps
 * the access token in memory with its expiry, refreshes it ahead of expiry
 * in the background, makes concurrent requests wait for one single token
 * request (single flight), forgets a token the upstream rejects, and backs
 * off after failures so that nothing asks the token endpoint faster than the
 * backoff allows. Requests during a backoff fail fast with 502.
 */
import type { Logger } from 'pino';
import type { Agent } from 'undici';
import { GatewayError } from '../errors.js';
import type { Metrics } from '../metrics/metrics.js';
import { requestToken, TokenError, tokenAgent, type TokenRequestConfig, type TokenResult } from './token-request.js';
import type { UpstreamCredentials } from './upstream.js';

const MAX_TIMER_MS = 86_400_000;

export interface TokenManagerOptions {
  upstream: string;
  request: TokenRequestConfig;
  /** Refresh this long before expiry; capped at half the token's life. */
  refreshMarginMs: number;
  retryOn: readonly number[];
  retryBodyLimit: number;
  log: Logger;
  metrics?: Metrics | undefined;
  /** First backoff after a failure (default 1 s), doubled per failure up to maxBackoffMs (default 30 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A token the upstream rejected before it was ever accepted, twice in a row, is a configuration problem: back off. */
  now?: () => number;
}

interface Held {
  value: string;
  /** The header pair sent to the upstream. */
  pair: string[];
  obtainedAt: number;
  refreshAt: number;
  /** Not used past this point (a little before the server's expiry, for requests in flight). */
  usableUntil: number;
  /** The upstream has accepted it at least once. */
  confirmed: boolean;
  /** Asked for by a request since it was obtained (idle upstreams stop refreshing). */
  used: boolean;
}

export class OAuth2TokenManager implements UpstreamCredentials {
  readonly retryOn: ReadonlySet<number>;
  readonly retryBodyLimit: number;
  readonly #o: TokenManagerOptions;
  readonly #now: () => number;
  #token: Held | undefined;
  #inflight: Promise<Held> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #notBefore = 0;
  #lastError: GatewayError | undefined;
  /** Consecutive rejections of tokens the upstream never accepted. */
  #unconfirmedRejections = 0;
  #agent: Agent | undefined;
  #closed = false;
  /** Token requests made (for tests and `upstream test`). */
  fetches = 0;

  constructor(o: TokenManagerOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.retryOn = new Set(o.retryOn);
    this.retryBodyLimit = o.retryBodyLimit;
  }

  /** The Authorization header pair; fetches a token first when none is usable. */
  headers(): string[] | Promise<string[]> {
    const now = this.#now();
    const t = this.#token;
    if (t !== undefined && now < t.usableUntil) {
      t.used = true;
      if (now >= t.refreshAt && this.#inflight === undefined && now >= this.#notBefore) void this.#refresh().catch(() => {});
      return t.pair;
    }
    if (this.#inflight) return this.#inflight.then((h) => h.pair);
    if (now < this.#notBefore && this.#lastError) {
      // Fail fast during the backoff rather than hold the request.
      throw this.#lastError;
    }
    return this.#refresh().then((h) => h.pair);
  }

  /** The upstream answered a request made with `sent` with a status other than a rejection. */
  accepted(sent: string[]): void {
    const t = this.#token;
    if (t !== undefined && t.pair === sent && !t.confirmed) {
      t.confirmed = true;
      this.#unconfirmedRejections = 0;
    }
  }

  /**
   * The upstream rejected the token in `sent` with `status`: forget it (once,
   * however many requests carried it). True when a retry with a fresh token
   * makes sense.
   */
  rejected(status: number, sent: string[]): boolean {
    const t = this.#token;
    if (t === undefined || t.pair !== sent) return !this.#closed; // already forgotten or replaced: the retry uses the new one
    this.#token = undefined;
    this.#clearTimer();
    if (t.confirmed) {
      this.#unconfirmedRejections = 0;
      this.#o.log.info({ upstream: this.#o.upstream, status }, 'upstream rejected its access token: fetching a new one');
      return true;
    }
    this.#unconfirmedRejections++;
    if (this.#unconfirmedRejections >= 2) {
      // Fresh tokens are rejected straight away: wrong client, scope or audience. Do not
      // turn every request into a token request; back off like a failed fetch.
      const err = new GatewayError('GW_UPSTREAM_CREDENTIALS', `upstream "${this.#o.upstream}" rejects freshly issued access tokens (HTTP ${status})`, {
        reason: 'upstream_credentials_rejected',
      });
      const wait = this.#backoff(undefined);
      this.#lastError = err;
      this.#o.log.warn({ upstream: this.#o.upstream, status, retry_in_ms: wait }, 'upstream rejects freshly issued access tokens: check client, scopes and audience');
      return false;
    }
    this.#o.log.info({ upstream: this.#o.upstream, status }, 'upstream rejected a new access token: fetching another one');
    return true;
  }

  /** Starts (or joins) the one token request. */
  #refresh(): Promise<Held> {
    if (this.#inflight) return this.#inflight;
    const p = this.#fetch().finally(() => {
      if (this.#inflight === p) this.#inflight = undefined;
    });
    this.#inflight = p;
    return p;
  }

  async #fetch(): Promise<Held> {
    if (this.#closed) throw new GatewayError('GW_UPSTREAM_CREDENTIALS', `upstream "${this.#o.upstream}" is closed`, { reason: 'upstream_token_failed' });
    const o = this.#o;
    const started = this.#now();
    this.fetches++;
    let result: TokenResult = 'ok';
    try {
      this.#agent ??= tokenAgent(o.request.timeoutMs);
      const { token, response } = await requestToken(o.request, this.#agent);
      const lifeMs = token.expiresIn * 1000;
      const expiresAt = started + lifeMs;
      const margin = Math.min(o.refreshMarginMs, lifeMs / 2);
      const held: Held = {
        value: token.accessToken,
        pair: ['authorization', `Bearer ${token.accessToken}`],
        obtainedAt: started,
        refreshAt: expiresAt - margin,
        usableUntil: expiresAt - Math.min(margin / 2, 5_000),
        confirmed: false,
        used: false,
      };
      if (this.#closed) return held;
      this.#token = held;
      this.#failures = 0;
      this.#notBefore = 0;
      this.#lastError = undefined;
      this.#schedule(held.refreshAt);
      o.log.info(
        { upstream: o.upstream, expires_in: token.expiresIn, ...(token.expiresInGiven ? {} : { expires_in_assumed: true }), ms: response.ms },
        'upstream access token obtained',
      );
      return held;
    } catch (err) {
      const te = err instanceof TokenError ? err : new TokenError('error', (err as Error).message, { cause: err });
      result = te.result;
      const wait = this.#backoff(te.retryAfterS);
      const gerr = new GatewayError('GW_UPSTREAM_CREDENTIALS', `upstream "${o.upstream}": ${te.message}`, { reason: 'upstream_token_failed', cause: te });
      this.#lastError = gerr;
      o.log.warn(
        { upstream: o.upstream, result, status: te.status, oauth_error: te.oauthError, ms: Math.round(this.#now() - started), retry_in_ms: wait },
        `upstream token request failed (${result}): ${te.message}`,
      );
      // A token that is still usable keeps serving; try again once the backoff is over.
      const t = this.#token;
      if (t !== undefined && !this.#closed) this.#schedule(Math.min(this.#notBefore, t.usableUntil));
      throw gerr;
    } finally {
      o.metrics?.upstreamTokenFetches.inc({ upstream: o.upstream, result });
    }
  }

  /** Records a failure; returns the wait before the next token request (exponential, capped, with jitter). */
  #backoff(retryAfterS: number | undefined): number {
    const min = this.#o.minBackoffMs ?? 1_000;
    const max = this.#o.maxBackoffMs ?? 30_000;
    this.#failures++;
    const base = Math.min(max, min * 2 ** (this.#failures - 1));
    let wait = Math.round(base * (0.8 + Math.random() * 0.2));
    if (retryAfterS !== undefined) wait = Math.max(wait, Math.min(max, retryAfterS * 1000));
    this.#notBefore = this.#now() + wait;
    return wait;
  }

  #schedule(at: number): void {
    this.#clearTimer();
    if (this.#closed) return;
    // setTimeout fires at once for delays past 2^31-1 ms (a token "valid for 30 days"): wake up daily instead.
    const delay = Math.min(Math.max(0, at - this.#now()), MAX_TIMER_MS);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#now() < at) {
        this.#schedule(at);
        return;
      }
      const t = this.#token;
      // Refresh ahead of expiry only for a token that is in use; an idle upstream's token just lapses.
      if (t === undefined || !t.used || this.#inflight) return;
      if (this.#now() < this.#notBefore) {
        this.#schedule(this.#notBefore);
        return;
      }
      this.#refresh().catch(() => {});
    }, delay);
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** When the held token lapses (ms since the epoch), for tests and `upstream test`. */
  get expiresAt(): number | undefined {
    return this.#token?.usableUntil;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#clearTimer();
    this.#token = undefined;
    const a = this.#agent;
    this.#agent = undefined;
    if (a) await a.close().catch(() => a.destroy());
  }
}
