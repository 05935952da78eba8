/**
 * The service-account token store: the small interface that the
 * authenticator and the CLI share, and the factory from a `store:` URL.
 * `file:` is the embedded default (./file-store.ts); a `postgres://` store
 * will implement the same interface.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from './file-store.js';
import { StoreError, type StoreData, type StoreSnapshot } from './store-data.js';

export * from './store-data.js';

export interface TokenStore {
  /** Where the store lives, for messages (a path or a URL without credentials). */
  readonly location: string;
  /** False while the store has never been written (a `file:` store whose file does not exist): an empty store. */
  readonly exists: boolean;
  /** The last good snapshot, in memory: what the authenticator reads on the hot path. */
  current(): StoreSnapshot;
  /** Reads the store now; throws StoreError when it cannot be read (the last good snapshot stays). */
  refresh(): Promise<StoreSnapshot>;
  /**
   * A read-modify-write under the store's lock, on fresh data (never the
   * cached snapshot): concurrent writers from other processes lose nothing.
   * `change` mutates `data` in place; throwing from it aborts without writing.
   */
  update<T>(change: (data: StoreData) => T): Promise<T>;
  /** Notes a token's use; written later, in batches (never a write per request). */
  recordUse(keyId: string, atMs: number): void;
  /** Starts watching for changes and flushing last-used times (gateway only). */
  start(): void;
  /** Stops watching, flushes pending last-used times. */
  close(): Promise<void>;
}

export interface StoreOptions {
  /** Directory that a relative `file:` path is resolved against: that of gateway.yaml. */
  baseDir: string;
  /** How often a running gateway checks the store for changes (default 250 ms). */
  pollInterval?: number;
  /** How often batched last-used times are written (default 60 s). */
  lastUsedInterval?: number;
  onError?: (err: StoreError) => void;
  /** A new snapshot: `external` when another process changed the store. */
  onChange?: (snapshot: StoreSnapshot, external: boolean) => void;
}

/** `file:./data/accounts.json`, `file:/abs/path`, `file:///abs/path` → an absolute path. */
export function storeFilePath(url: string, baseDir: string): string {
  const rest = url.slice('file:'.length);
  const path = rest.startsWith('//') ? fileURLToPath(url) : rest;
  if (!path) throw new StoreError('config', `store "${url}": expected a path, as in "file:./data/accounts.json"`);
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/**
 * Opens the store named by a `store:` URL. It is read at once (synchronously:
 * configuration compiles synchronously), so that a store that cannot be read
 * fails here, with a StoreError that says why.
 */
export function openTokenStore(url: string, options: StoreOptions): TokenStore {
  if (url.startsWith('file:')) return new FileStore(storeFilePath(url, options.baseDir), options);
  if (/^postgres(ql)?:\/\//.test(url)) throw new StoreError('config', 'store "postgres://…" is not supported yet in this build; use "file:PATH"');
  throw new StoreError('config', `store "${url}": expected "file:PATH" or "postgres://…"`);
}
