/**
 * The `file:` token store: one JSON file.
 *
 * - Writes are read-modify-write under a lock file (`<file>.lock`, created
 *   with O_EXCL; a lock whose owner process is gone, or older than 30 s, is
 *   stale and broken), on data read fresh under the lock, then written to a
 *   temporary file, fsync'd and renamed over the store: a reader sees the old
 *   file or the new one, never half of one, and no writer loses another's
 *   update.
 * - A running gateway watches the file's directory (fs.watch: the file is
 *   replaced by rename, so its own inode changes) and also polls it against
 *   its state at the last read (util/file-poll.ts, 250 ms by default, for
 *   where inotify does not reach, e.g. network or container mounts), so that
 *   a change reaches it well within the 2 s of DESIGN.md §3, even one made
 *   between the first read and the start of the watch.
 * - A damaged file is never treated as empty and never overwritten: at open
 *   it throws; later the last good snapshot keeps serving and the error is
 *   reported (logged and counted by the caller).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, watch, writeSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FilePoll, stampFile } from '../util/file-poll.js';
import { acquireLock, LockBusyError } from '../util/lock-file.js';
import type { StoreOptions, TokenStore } from './token-store.js';
import { emptyStore, parseStoreText, StoreError, StoreSnapshot, storeFileSchema, type StoreData } from './store-data.js';

const LOCK_TIMEOUT_MS = 10_000;
const LOCK_STALE_MS = 30_000;

export class FileStore implements TokenStore {
  readonly location: string;
  readonly #path: string;
  readonly #lockPath: string;
  readonly #options: StoreOptions;
  #snapshot: StoreSnapshot;
  #lastText: string | undefined;
  #lastError: string | undefined;
  /** Last use per key id, epoch milliseconds. */
  #pending = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #watching = false;
  /** The file's stamp when it was last read. */
  #stamp = 'missing';
  #filePoll: FilePoll | undefined;
  #dirWatcher: FSWatcher | undefined;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(path: string, options: StoreOptions) {
    this.#path = path;
    this.#lockPath = `${path}.lock`;
    this.location = path;
    this.#options = options;
    const text = this.#readText(true);
    this.#snapshot = new StoreSnapshot(text === undefined ? emptyStore() : parseStoreText(text, path));
    this.#lastText = text;
  }

  current(): StoreSnapshot {
    return this.#snapshot;
  }

  get exists(): boolean {
    return this.#lastText !== undefined;
  }

  /** The file's text; undefined when it does not exist (an empty store) and `missingOk`. */
  #readText(missingOk: boolean): string | undefined {
    this.#stamp = stampFile(this.#path);
    this.#filePoll?.track(new Map([[this.#path, this.#stamp]]));
    try {
      return readFileSync(this.#path, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' && missingOk) return undefined;
      throw new StoreError('read', `Cannot read token store "${this.#path}": ${e.code === 'ENOENT' ? 'the file has disappeared' : (e.code ?? e.message)}`, { cause: err });
    }
  }

  #install(text: string | undefined, data: StoreData, external: boolean): StoreSnapshot {
    this.#lastText = text;
    this.#lastError = undefined;
    this.#snapshot = new StoreSnapshot(data);
    this.#options.onChange?.(this.#snapshot, external);
    return this.#snapshot;
  }

  async refresh(): Promise<StoreSnapshot> {
    const text = this.#readText(true);
    if (text !== undefined && text === this.#lastText) return this.#snapshot;
    return this.#install(text, text === undefined ? emptyStore() : parseStoreText(text, this.#path), true);
  }

  /** Poll callback: a change on disk replaces the snapshot; a failure keeps the last good one. */
  #poll = (): void => {
    try {
      // Once the store exists, its disappearance is a fault, not "no accounts".
      const text = this.#readText(this.#lastText === undefined);
      if (text === this.#lastText) return;
      this.#install(text, text === undefined ? emptyStore() : parseStoreText(text, this.#path), true);
    } catch (err) {
      const e = err instanceof StoreError ? err : new StoreError('read', `Cannot read token store "${this.#path}": ${(err as Error).message}`, { cause: err });
      if (e.message === this.#lastError) return;
      this.#lastError = e.message;
      this.#options.onError?.(e);
    }
  };

  update<T>(change: (data: StoreData) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const release = await this.#lock();
      try {
        const text = this.#readText(true);
        // Never overwrite a damaged file: parseStoreText throws, and nothing is written.
        const data = text === undefined ? emptyStore() : parseStoreText(text, this.#path);
        const result = change(data);
        const checked = storeFileSchema.parse(data);
        const out = JSON.stringify(checked, null, 2) + '\n';
        this.#write(out);
        this.#install(out, checked, false);
        return result;
      } finally {
        release();
      }
    };
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => undefined);
    return p;
  }

  #write(text: string): void {
    const dir = dirname(this.#path);
    const tmp = `${this.#path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.#path);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // already renamed or never created
      }
      throw new StoreError('write', `Cannot write token store "${this.#path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    // Make the rename itself durable; not every platform can fsync a directory.
    try {
      const d = openSync(dir, 'r');
      try {
        fsyncSync(d);
      } finally {
        closeSync(d);
      }
    } catch {
      // best effort
    }
  }

  async #lock(): Promise<() => void> {
    try {
      mkdirSync(dirname(this.#path), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreError('lock', `Cannot create the directory of token store "${this.#path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    try {
      return await acquireLock(this.#lockPath, { timeoutMs: LOCK_TIMEOUT_MS, staleMs: LOCK_STALE_MS });
    } catch (err) {
      if (err instanceof LockBusyError) throw new StoreError('lock', `Cannot lock token store "${this.#path}": ${err.message}; if no gatehouse process is running, remove that file`, { cause: err });
      throw new StoreError('lock', `Cannot lock token store "${this.#path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  }

  recordUse(keyId: string, atMs: number): void {
    this.#pending.set(keyId, atMs);
  }

  /** Writes the batched last-used times (one write for all of them). */
  async flush(): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    try {
      await this.update((data) => {
        for (const a of data.accounts) {
          for (const t of a.tokens) {
            const at = batch.get(t.key_id);
            if (at !== undefined && (t.last_used === undefined || Date.parse(t.last_used) < at)) t.last_used = new Date(at).toISOString();
          }
        }
      });
    } catch (err) {
      // Keep them for the next attempt, unless newer uses arrived meanwhile.
      for (const [k, v] of batch) if (!this.#pending.has(k)) this.#pending.set(k, v);
      this.#options.onError?.(err instanceof StoreError ? err : new StoreError('write', (err as Error).message, { cause: err }));
    }
  }

  start(): void {
    if (this.#watching) return;
    this.#watching = true;
    this.#filePoll = new FilePoll(this.#poll, this.#options.pollInterval ?? 250);
    this.#filePoll.track(new Map([[this.#path, this.#stamp]]));
    try {
      mkdirSync(dirname(this.#path), { recursive: true, mode: 0o700 });
      const name = basename(this.#path);
      this.#dirWatcher = watch(dirname(this.#path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.#poll();
      });
      this.#dirWatcher.on('error', () => {
        this.#dirWatcher?.close();
        this.#dirWatcher = undefined;
      });
    } catch {
      // No inotify here (or no directory yet): polling alone still meets the 2 s.
    }
    this.#timer = setInterval(() => void this.flush(), this.#options.lastUsedInterval ?? 60_000);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (!this.#watching) return; // never started (CLI, check, explain): nothing to flush
    this.#watching = false;
    this.#filePoll?.close();
    this.#filePoll = undefined;
    this.#dirWatcher?.close();
    this.#dirWatcher = undefined;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
