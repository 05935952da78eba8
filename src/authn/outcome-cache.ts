/**
 * Verified-token cache: SHA-256 of the token → the principal it proved, kept
 * no longer than the token's own validity (and a caller-chosen bound), in a
 * bounded LRU. A caller reusing its token pays the signature check once.
 * The token itself is never stored.
 */
import { sha256 } from '../util/sha256.js';
import type { Principal } from './authenticator.js';

interface Entry {
  principal: Principal;
  /** Epoch ms after which the entry is void. */
  until: number;
}

export class OutcomeCache {
  readonly #max: number;
  readonly #map = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(max = 10_000, now: () => number = Date.now) {
    this.#max = max;
    this.#now = now;
  }

  static key(token: string): string {
    return sha256(token, 'base64url');
  }

  get(key: string): Principal | undefined {
    const e = this.#map.get(key);
    if (!e) return undefined;
    if (this.#now() >= e.until) {
      this.#map.delete(key);
      return undefined;
    }
    // Recently used moves to the end (Map keeps insertion order).
    this.#map.delete(key);
    this.#map.set(key, e);
    return e.principal;
  }

  set(key: string, principal: Principal, until: number): void {
    if (until <= this.#now()) return;
    this.#map.delete(key);
    this.#map.set(key, { principal, until });
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
  }

  get size(): number {
    return this.#map.size;
  }

  clear(): void {
    this.#map.clear();
  }
}
