/**
 * The audit log (DESIGN.md §7): one JSON line per request or event, hash
 * chained. Records are serialized when they happen and staged as their
 * lines (ChainBatch); a flush
 * (every `audit.flush_interval`, when the buffer grows, on reopen and on
 * close) chains them and appends them in one write, under the lock file the
 * CLI also takes, re-reading the tail hash whenever the file is not the size
 * this process left it at (another writer appended, or it was rotated).
 *
 * A write failure is logged loudly and counted, the records are kept (up to
 * MAX_PENDING) and retried, and `failing` turns true so that
 * `audit.required` can refuse requests until the log is writable again.
 */
import { mkdir, open, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ChainBatch, GENESIS, hashLine, headPath, lastLineAsync, writeHead } from './chain.js';
import { withLock } from './lock.js';

/** Records kept while the log cannot be written; older ones are dropped (and counted). */
export const MAX_PENDING = 100_000;
/**
 * Flush early when this much is buffered. Every batch costs some ten file
 * operations (lock, stat, write, head), so batches are large; they are
 * chained CHAIN_SLICE records at a time, letting requests run in between,
 * so that a large batch does not stall the requests in flight (p99).
 */
const FLUSH_BYTES = 1024 * 1024;
/** Records chained in one go before requests get a turn: about 0.2 ms of hashing. */
const CHAIN_SLICE = 128;

/** Chains a batch after `prev`, CHAIN_SLICE records at a time with requests in between; returns the last hash. */
async function linkInSlices(batch: ChainBatch, prev: string): Promise<string> {
  let last = prev;
  for (let i = 0; i < batch.count; i += CHAIN_SLICE) {
    // Pending I/O callbacks (requests) run before the flush goes on.
    if (i > 0) await setImmediate();
    last = batch.link(last, i, Math.min(i + CHAIN_SLICE, batch.count));
  }
  return last;
}
/** Rotated files kept by size rotation: FILE.1 … FILE.KEEP. */
export const KEEP_ROTATED = 5;

export interface AuditLogOptions {
  /** Absolute path, or "-" for stdout. */
  file: string;
  /** Milliseconds between flushes. */
  flushInterval: number;
  /** Rotate when a write would take the file past this many bytes. */
  maxSize?: number | undefined;
  log: Logger;
  /** Called with the number of records that could not be written. */
  onWriteFailure?: (records: number) => void;
  /** Where "-" writes (tests). */
  stdout?: NodeJS.WritableStream;
}

export class AuditLog {
  #opts: AuditLogOptions;
  #pending = new ChainBatch();
  /** How many records at the head of #pending were already counted as failed. */
  #counted = 0;
  #fh: FileHandle | undefined;
  #ino = 0;
  /** File size after this process's last write; -1 forces a tail read. */
  #size = -1;
  #prev = GENESIS;
  #failing = false;
  #lastAlarm = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(opts: AuditLogOptions) {
    this.#opts = opts;
    this.#startTimer();
  }

  /** Opens the log and checks that it can be written (a failure is reported, not thrown). */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const a = new AuditLog(opts);
    await a.flush();
    if (opts.file !== '-' && !a.#fh) await a.#tryOpen();
    return a;
  }

  get file(): string {
    return this.#opts.file;
  }

  /** True while the log cannot be written. */
  get failing(): boolean {
    return this.#failing;
  }

  get pending(): number {
    return this.#pending.count;
  }

  /** Buffers one serialized record (a JSON object without `prev`). Cheap: no I/O. */
  append(body: string): void {
    if (this.#closed) {
      this.#opts.log.error({ audit: body }, 'audit record after the audit log was closed');
      return;
    }
    const pending = this.#pending;
    pending.add(body);
    if (pending.count > MAX_PENDING) {
      pending.dropOldest();
      if (this.#counted > 0) this.#counted--;
      else this.#opts.onWriteFailure?.(1);
    }
    if (pending.bytes > FLUSH_BYTES && !this.#flushing) void this.flush();
  }

  /** Buffers a non-request event (`config.reloaded`, `account.created`…). */
  event(event: string, fields: Record<string, unknown> = {}): void {
    this.append(JSON.stringify({ time: new Date().toISOString(), event, ...fields }));
  }

  /** Changes the settings after a reload; a new path is opened at the next flush. */
  async configure(next: Pick<AuditLogOptions, 'file' | 'flushInterval' | 'maxSize'>): Promise<void> {
    const o = this.#opts;
    if (next.flushInterval !== o.flushInterval) {
      o.flushInterval = next.flushInterval;
      this.#startTimer();
    }
    o.maxSize = next.maxSize;
    if (next.file !== o.file) {
      await this.flush();
      o.file = next.file;
      await this.#closeFile();
      await this.flush();
      if (next.file !== '-' && !this.#fh) await this.#tryOpen();
    }
  }

  /** Flushes, then reopens the file by name (SIGUSR2 after logrotate moved it). */
  async reopen(): Promise<void> {
    await this.flush();
    await this.#closeFile();
    if (this.#opts.file !== '-') await this.#tryOpen();
  }

  /** Writes everything buffered so far. Never throws. */
  flush(): Promise<void> {
    if (this.#flushing) {
      this.#again = true;
      return this.#flushing;
    }
    this.#flushing = (async () => {
      do {
        this.#again = false;
        await this.#flushOnce();
        // A flush() asked for while this one ran gets a pass of its own (it may follow a repair).
      } while (this.#again);
    })().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  /** Final flush (shutdown). Records that still cannot be written are reported. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    await this.flush();
    if (this.#pending.count) await this.flush();
    this.#closed = true;
    if (this.#pending.count) this.#opts.log.error({ records: this.#pending.count, file: this.#opts.file }, 'AUDIT RECORDS LOST: the audit log could not be written before shutdown');
    await this.#closeFile();
  }

  #startTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = setInterval(() => {
      if (this.#pending.count || (this.#failing && this.#opts.file !== '-')) void this.flush();
    }, Math.max(10, this.#opts.flushInterval));
    this.#timer.unref();
  }

  async #flushOnce(): Promise<void> {
    const o = this.#opts;
    if (o.file === '-') {
      if (!this.#pending.count) return;
      const batch = this.#take();
      this.#prev = await linkInSlices(batch, this.#prev);
      const out = o.stdout ?? process.stdout;
      // The chunks are reused once the stream has written the last part (callbacks come in order), not before:
      // fresh 64 kB chunks for every batch cost a page fault per 4 kB (issue 6: 0.11 faults a request on stdout, 0.03 to a file).
      const parts = batch.parts();
      const done = batch.releaser();
      for (let i = 0; i < parts.length; i++) out.write(parts[i] as Buffer, i === parts.length - 1 ? done : undefined);
      batch.dispose();
      return;
    }
    if (!this.#pending.count) {
      // Nothing to write: while failing, probe so that audit.required stops refusing once the file is back.
      if (this.#failing) await this.#tryOpen();
      return;
    }
    const batch = this.#take();
    try {
      await withLock(o.file, () => this.#write(batch));
      this.#counted = 0;
      if (this.#failing) {
        this.#failing = false;
        o.log.warn({ file: o.file }, 'audit log is writable again');
      }
    } catch (err) {
      const failed = batch.count;
      batch.append(this.#pending);
      this.#pending = batch;
      const fresh = failed - this.#counted;
      if (fresh > 0) o.onWriteFailure?.(fresh);
      this.#counted = failed;
      this.#fail(err);
      await this.#closeFile();
    }
  }

  #take(): ChainBatch {
    const batch = this.#pending;
    this.#pending = new ChainBatch();
    return batch;
  }

  async #write(batch: ChainBatch): Promise<void> {
    const file = this.#opts.file;
    // The file by name: moved away (logrotate without SIGUSR2) or deleted, follow the name; the same file, its size is ours.
    const byName = this.#fh ? await stat(file).catch(() => undefined) : undefined;
    let size = byName?.size ?? 0;
    if (!byName || byName.ino !== this.#ino) {
      await this.#closeFile();
      size = await this.#openFile();
    }
    const max = this.#opts.maxSize;
    if (max !== undefined && size > 0 && size + batch.bytes > max) {
      await this.#rotate();
      size = 0;
    }
    if (size !== this.#size) {
      // Someone else appended (the CLI), or this is a new file: continue from its real tail.
      const line = size === 0 ? undefined : await lastLineAsync(this.#fh!, size);
      this.#prev = line === undefined ? GENESIS : hashLine(line);
    }
    const last = await linkInSlices(batch, this.#prev);
    const bytes = batch.bytes;
    const { bytesWritten } = await this.#fh!.writev(batch.parts());
    if (bytesWritten !== bytes) throw new Error(`short write to ${file}: ${bytesWritten} of ${bytes} bytes`);
    batch.release();
    batch.dispose();
    this.#prev = last;
    this.#size = size + bytes;
    await writeHead(file, { hash: last, size: this.#size });
  }

  async #rotate(): Promise<void> {
    const file = this.#opts.file;
    await this.#closeFile();
    for (let i = KEEP_ROTATED - 1; i >= 1; i--) {
      await rename(`${file}.${i}`, `${file}.${i + 1}`).catch(() => undefined);
      await rename(headPath(`${file}.${i}`), headPath(`${file}.${i + 1}`)).catch(() => undefined);
    }
    await rename(file, `${file}.1`);
    await rename(headPath(file), headPath(`${file}.1`)).catch(() => undefined);
    await this.#openFile();
    this.#opts.log.info({ file, rotated_to: `${file}.1` }, 'audit log rotated (audit.max_size)');
  }

  /** Opens the file (creating it), returns its size. */
  async #openFile(): Promise<number> {
    const file = this.#opts.file;
    await mkdir(dirname(file), { recursive: true });
    const fh = await open(file, 'a+', 0o640);
    this.#fh = fh;
    const st = await fh.stat();
    this.#ino = st.ino;
    this.#size = -1;
    return st.size;
  }

  async #tryOpen(): Promise<void> {
    try {
      await this.#openFile();
      if (this.#failing) {
        this.#failing = false;
        this.#opts.log.warn({ file: this.#opts.file }, 'audit log is writable again');
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  #fail(err: unknown): void {
    const first = !this.#failing;
    this.#failing = true;
    // Loud, but not once per retry: on the first failure, then every 30 s.
    if (first || Date.now() - this.#lastAlarm > 30_000) {
      this.#lastAlarm = Date.now();
      this.#opts.log.error({ err, file: this.#opts.file, pending: this.#pending.count }, 'AUDIT LOG CANNOT BE WRITTEN: records are kept in memory and retried');
    }
  }

  async #closeFile(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    this.#size = -1;
    if (fh) await fh.close().catch(() => undefined);
  }
}
