/**
 * One issuer's signing keys (DESIGN.md §10 "JWT"): fetched from its JWKS
 * endpoint with undici (timeout, 1 MB body limit, no redirects), imported once
 * per fetch, refreshed in the background, and refetched on an unknown `kid`
 * at most once per `jwks_cooldown` (single flight). A failing endpoint leaves
 * the cached keys serving for up to `jwks_max_stale` after the last success.
 *
 * Keys come from the configured (or discovered) JWKS URI only: never from a
 * token's `jku`, `x5u` or embedded `jwk` (RFC 8725 §3.10).
 */
import { importJWK, type CryptoKey, type JWK } from 'jose';
import type { Logger } from 'pino';
import { request } from 'undici';
import type { IssuerConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';

/** JWKS and discovery documents larger than this are refused. */
export const MAX_JWKS_BYTES = 1024 * 1024;
/** More keys than this in one JWKS is refused: importing them is work an attacker-controlled IdP could multiply. */
const MAX_KEYS = 100;

/** A verification key, imported for one algorithm. */
export interface VerifyKey {
  readonly kid: string | undefined;
  readonly alg: string;
  readonly key: CryptoKey;
}

/** The outcome of a key lookup for a token header. */
export type KeyLookup =
  | { found: VerifyKey }
  /** No key matches (after any refetch the cooldown allowed). */
  | { missing: 'kid_unknown' | 'kid_ambiguous' }
  /** No usable key set: never fetched, or stale beyond jwks_max_stale. */
  | { unavailable: true };

/** The result label values of gatehouse_jwks_fetches_total (a fixed set). */
export type FetchResult = 'ok' | 'error' | 'timeout' | 'http_error' | 'redirect' | 'too_large' | 'invalid';

export class JwksFetchError extends Error {
  readonly result: FetchResult;
  constructor(result: Exclude<FetchResult, 'ok'>, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'JwksFetchError';
    this.result = result;
  }
}

/** Which JWS algorithms a JWK can verify, from its kty/crv (RFC 7518 §3, RFC 8037). */
function algorithmsFor(jwk: JWK): readonly string[] {
  switch (jwk.kty) {
    case 'RSA':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'EC':
      return jwk.crv === 'P-256' ? ['ES256'] : jwk.crv === 'P-384' ? ['ES384'] : jwk.crv === 'P-521' ? ['ES512'] : [];
    case 'OKP':
      return jwk.crv === 'Ed25519' ? ['EdDSA', 'Ed25519'] : [];
    default:
      return [];
  }
}

export interface JwksCacheOptions {
  /** The issuer's name in gateway.yaml (metric label, log field). */
  name: string;
  config: IssuerConfig;
  log: Logger;
  metrics: Metrics;
  /** Clock, for tests. */
  now?: () => number;
}

export class JwksCache {
  readonly name: string;
  readonly #cfg: IssuerConfig;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #now: () => number;
  readonly #allowed: ReadonlySet<string>;
  /** kid → keys (one per allowed algorithm); keys without kid under "". */
  #keys = new Map<string, VerifyKey[]>();
  #byAlg = new Map<string, VerifyKey[]>();
  #lastSuccess: number | undefined;
  /** When the last refetch caused by a token (unknown kid, no keys) started. */
  #lastOnDemand = -Infinity;
  #inflight: Promise<void> | undefined;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  /** A refetch asked for during the cooldown, run when it ends (at most one pending). */
  #deferred: NodeJS.Timeout | undefined;
  #abort = new AbortController();
  #closed = false;
  #jwksUri: string | undefined;
  /** Fetches made, for tests and diagnostics. */
  fetches = 0;

  constructor(opts: JwksCacheOptions) {
    this.name = opts.name;
    this.#cfg = opts.config;
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    this.#now = opts.now ?? Date.now;
    this.#allowed = new Set(opts.config.algorithms);
    this.#jwksUri = opts.config.jwks_uri;
  }

  /** Starts the first fetch and the background refresh (gateway mode `serve` only). */
  start(): void {
    if (this.#closed || this.#timer || this.#inflight) return;
    void this.#refresh('start');
  }

  /** True while a key set is usable: fetched at least once, and not stale beyond jwks_max_stale. */
  ready(): boolean {
    return this.#lastSuccess !== undefined && this.#now() - this.#lastSuccess <= this.#cfg.jwks_max_stale;
  }

  /**
   * The key for a token header `{alg, kid}`. An unknown kid (or no usable key
   * set) triggers one refetch unless another token did so less than
   * jwks_cooldown ago; concurrent callers share the fetch in flight.
   */
  async lookup(alg: string, kid: string | undefined): Promise<KeyLookup> {
    const first = this.#find(alg, kid);
    if (first && 'found' in first) return first;
    if (this.#inflight) await this.#inflight;
    else if (this.#closed) return first ?? { unavailable: true };
    else {
      const wait = this.#lastOnDemand + this.#cfg.jwks_cooldown - this.#now();
      if (wait <= 0) {
        this.#lastOnDemand = this.#now();
        await this.#refresh(first ? 'kid_unknown' : 'unavailable');
      } else {
        // Within the cooldown: this token is refused, but one fetch is due when it ends, so that
        // a key rotated in the meantime works on its next use without waiting for jwks_refresh.
        this.#deferRefetch(wait);
      }
    }
    return this.#find(alg, kid) ?? { unavailable: true };
  }

  #deferRefetch(wait: number): void {
    if (this.#deferred) return;
    this.#deferred = setTimeout(() => {
      this.#deferred = undefined;
      if (this.#closed || this.#inflight) return;
      this.#lastOnDemand = this.#now();
      void this.#refresh('kid_unknown_deferred');
    }, wait);
    this.#deferred.unref();
  }

  /** Synchronous lookup in the current key set; undefined when no usable key set. */
  #find(alg: string, kid: string | undefined): KeyLookup | undefined {
    if (!this.ready()) return undefined;
    if (kid !== undefined) {
      const k = this.#keys.get(kid)?.find((v) => v.alg === alg);
      return k ? { found: k } : { missing: 'kid_unknown' };
    }
    // No kid: only when exactly one key can verify this algorithm (DESIGN.md §10).
    const candidates = this.#byAlg.get(alg) ?? [];
    if (candidates.length === 1) return { found: candidates[0] as VerifyKey };
    return { missing: candidates.length === 0 ? 'kid_unknown' : 'kid_ambiguous' };
  }

  /** Single-flight fetch; never throws (failures are logged and counted). */
  #refresh(trigger: string): Promise<void> {
    this.#inflight ??= this.#fetchAndInstall(trigger).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #fetchAndInstall(trigger: string): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.fetches++;
    try {
      const uri = this.#jwksUri ?? (await this.#discover());
      const doc = await this.#getJson(uri);
      const { byKid, byAlg, count } = await this.#importKeys(doc);
      if (this.#closed) return;
      this.#keys = byKid;
      this.#byAlg = byAlg;
      this.#jwksUri = uri;
      this.#lastSuccess = this.#now();
      this.#failures = 0;
      this.#metrics.jwksFetches.inc({ issuer: this.name, result: 'ok' });
      this.#log.debug({ issuer: this.name, trigger, keys: count }, 'JWKS fetched');
    } catch (err) {
      if (this.#closed) return;
      this.#failures++;
      const result = err instanceof JwksFetchError ? err.result : 'error';
      this.#metrics.jwksFetches.inc({ issuer: this.name, result });
      const stale = this.#lastSuccess === undefined ? undefined : Math.round((this.#now() - this.#lastSuccess) / 1000);
      this.#log.warn(
        { issuer: this.name, trigger, result, error: (err as Error).message, cached_keys_age_s: stale, serving: this.ready() },
        this.ready() ? 'JWKS fetch failed; cached keys keep serving' : 'JWKS fetch failed; no usable keys for this issuer',
      );
    } finally {
      this.#schedule();
    }
  }

  /** Next background fetch: jwks_refresh after a success, sooner (with backoff) after a failure. */
  #schedule(): void {
    if (this.#closed) return;
    const { jwks_refresh: refresh, jwks_cooldown: cooldown } = this.#cfg;
    let delay = refresh;
    if (this.#failures > 0) {
      const backoff = Math.max(1000, cooldown) * 2 ** Math.min(this.#failures - 1, 6);
      // Without keys, retry at least every minute: readiness depends on it.
      delay = Math.min(backoff, refresh, this.ready() ? Infinity : 60_000);
    }
    this.#timer = setTimeout(() => void this.#refresh('refresh'), delay);
    this.#timer.unref();
  }

  /** OpenID Connect Discovery 1.0 §4: `<issuer>/.well-known/openid-configuration`. */
  async #discover(): Promise<string> {
    const base = this.#cfg.issuer.replace(/\/+$/, '');
    const doc = await this.#getJson(`${base}/.well-known/openid-configuration`);
    if (typeof doc !== 'object' || doc === null) throw new JwksFetchError('invalid', 'discovery document is not a JSON object');
    const { issuer, jwks_uri: uri } = doc as { issuer?: unknown; jwks_uri?: unknown };
    // §4.3: the issuer in the document must be the one we asked about.
    if (issuer !== this.#cfg.issuer) throw new JwksFetchError('invalid', 'discovery document names another issuer');
    if (typeof uri !== 'string' || !/^https?:\/\//i.test(uri)) throw new JwksFetchError('invalid', 'discovery document has no http(s) jwks_uri');
    return uri;
  }

  async #getJson(url: string): Promise<unknown> {
    const timeout = this.#cfg.jwks_timeout;
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(timeout)]);
    let res;
    try {
      // undici's request() never follows redirects: a 3xx is an error below.
      res = await request(url, { method: 'GET', headers: { accept: 'application/jwk-set+json, application/json' }, signal, headersTimeout: timeout, bodyTimeout: timeout });
    } catch (err) {
      throw new JwksFetchError(isTimeout(err) ? 'timeout' : 'error', `cannot fetch ${url}: ${(err as Error).message}`);
    }
    const { statusCode, body } = res;
    // A destroyed body emits "error"; the outcome is already decided by then.
    body.on('error', () => {});
    if (statusCode < 200 || statusCode > 299) {
      body.destroy();
      throw new JwksFetchError(statusCode >= 300 && statusCode < 400 ? 'redirect' : 'http_error', `${url} answered ${statusCode}${statusCode >= 300 && statusCode < 400 ? ' (redirects are not followed)' : ''}`);
    }
    const declared = Number(res.headers['content-length']);
    if (declared > MAX_JWKS_BYTES) {
      body.destroy();
      throw new JwksFetchError('too_large', `${url} body is larger than 1 MB`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of body) {
        size += (chunk as Buffer).length;
        if (size > MAX_JWKS_BYTES) {
          body.destroy();
          throw new JwksFetchError('too_large', `${url} body is larger than 1 MB`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof JwksFetchError) throw err;
      throw new JwksFetchError(isTimeout(err) ? 'timeout' : 'error', `cannot read ${url}: ${(err as Error).message}`);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch {
      throw new JwksFetchError('invalid', `${url} did not return JSON`);
    }
  }

  /** Imports the usable signature keys of a JWKS document; refuses a document with none. */
  async #importKeys(doc: unknown): Promise<{ byKid: Map<string, VerifyKey[]>; byAlg: Map<string, VerifyKey[]>; count: number }> {
    const keys = (doc as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) throw new JwksFetchError('invalid', 'JWKS has no "keys" array');
    if (keys.length > MAX_KEYS) throw new JwksFetchError('invalid', `JWKS has more than ${MAX_KEYS} keys`);
    const byKid = new Map<string, VerifyKey[]>();
    const byAlg = new Map<string, VerifyKey[]>();
    let count = 0;
    for (const raw of keys) {
      if (typeof raw !== 'object' || raw === null) continue;
      const jwk = raw as JWK;
      // Public signature keys only (RFC 7517 §4.2, §4.3); never symmetric or private material.
      if (jwk.use !== undefined && jwk.use !== 'sig') continue;
      if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) continue;
      if ('d' in jwk || jwk.kty === 'oct') continue;
      if (jwk.kid !== undefined && typeof jwk.kid !== 'string') continue;
      const algs = algorithmsFor(jwk).filter((a) => this.#allowed.has(a) && (jwk.alg === undefined || jwk.alg === a || (jwk.alg === 'EdDSA' && a === 'Ed25519') || (jwk.alg === 'Ed25519' && a === 'EdDSA')));
      for (const alg of algs) {
        let key: CryptoKey;
        try {
          const { alg: _a, use: _u, key_ops: _k, ext: _e, ...material } = jwk;
          key = (await importJWK(material, alg)) as CryptoKey;
        } catch (err) {
          this.#log.warn({ issuer: this.name, kid: jwk.kid, alg, error: (err as Error).message }, 'JWKS key cannot be imported; skipped');
          continue;
        }
        const v: VerifyKey = { kid: jwk.kid, alg, key };
        const k = jwk.kid ?? '';
        byKid.set(k, [...(byKid.get(k) ?? []), v]);
        byAlg.set(alg, [...(byAlg.get(alg) ?? []), v]);
        count++;
      }
    }
    if (count === 0) throw new JwksFetchError('invalid', `JWKS has no usable key for ${[...this.#allowed].join(', ')}`);
    return { byKid, byAlg, count };
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#deferred);
    this.#timer = undefined;
    this.#abort.abort();
  }
}

function isTimeout(err: unknown): boolean {
  const e = err as { name?: string; code?: string } | null;
  return e?.name === 'TimeoutError' || e?.code === 'UND_ERR_HEADERS_TIMEOUT' || e?.code === 'UND_ERR_BODY_TIMEOUT' || e?.code === 'UND_ERR_CONNECT_TIMEOUT';
}
