/**
 * Verified-token cache: SHA-256 of the token → the principal it proved (or,
 * in a cache of its own, the refusal it earned), kept
 * no longer than the token's own validity (and a caller-chosen bound), in a
 * bounded cache that evicts like an LRU (second chance: an entry used since
 * it was last passed over moves to the back instead of going; a hit only
 * sets a flag, where moving the entry on every hit was a Map delete and
 * insert per request). A caller reusing its token pays the signature check
 * once. The token itself is never stored.
 */
import { sha256 } from '../util/sha256.js';
import type { Principal } from './authenticator.js';

interface Entry<V> {
  value: V;
  /** Epoch ms after which the entry is void. */
  until: number;
  /** Hit since eviction last passed over it. */
  used: boolean;
}

export class OutcomeCache<V = Principal> {
  readonly #max: number;
  readonly #map = new Map<string, Entry<V>>();
  readonly #now: () => number;

  constructor(max = 10_000, now: () => number = Date.now) {
    this.#max = max;
    this.#now = now;
  }

  static key(token: string): string {
    return sha256(token, 'base64url');
  }

  get(key: string): V | undefined {
    const e = this.#map.get(key);
    if (!e) return undefined;
    if (this.#now() >= e.until) {
      this.#map.delete(key);
      return undefined;
    }
    e.used = true;
    return e.value;
  }

  set(key: string, value: V, until: number): void {
    const now = this.#now();
    if (until <= now) return;
    const map = this.#map;
    map.delete(key);
    map.set(key, { value, until, used: false });
    if (map.size <= this.#max) return;
    // From the oldest (Map keeps insertion order): a used, live entry gets a second chance at the back; the first other one goes.
    for (const [k, e] of map) {
      map.delete(k);
      if (!e.used || e.until <= now) return;
      e.used = false;
      map.set(k, e);
    }
  }

  get size(): number {
    return this.#map.size;
  }

  clear(): void {
    this.#map.clear();
  }
}
