/**
 * The audit log (DESIGN.md §7): one JSON line per request or event, hash
 * chained. Records are serialized and chained when they happen — one hash
 * each, spread over the requests rather than thousands at once in a flush,
 * which stalled every request in flight (p99, issue 6) — and buffered; a
 * flush (every `audit.flush_interval`, when the buffer grows, on reopen and
 * on close) appends them in one write, under the lock file the CLI also
 * takes, re-reading the tail hash whenever the file is not the size this
 * process left it at (another writer appended, or it was rotated). When that
 * tail is not the hash the buffered lines were chained on, they are chained
 * again on it (rare: a CLI event, a rotation, a new file).
 *
 * A write failure is logged loudly and counted, the records are kept (up to
 * MAX_PENDING) and retried, and `failing` turns true so that
 * `audit.required` can refuse requests until the log is writable again.
 */
import { mkdir, open, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { GENESIS, hashLine, headPath, lastLineAsync, rechain, withPrev, writeHead } from './chain.js';
import { withLock } from './lock.js';

/** Records kept while the log cannot be written; older ones are dropped (and counted). */
export const MAX_PENDING = 100_000;
/** Flush early when this much is buffered: a large batch written at once (one join, one encode) stalls requests in flight. */
const FLUSH_BYTES = 256 * 1024;
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
  /** Chained lines (without newline) waiting to be written. */
  #pending: string[] = [];
  #pendingBytes = 0;
  /** The hash the first pending line is chained on. */
  #pendingBase = GENESIS;
  /** The hash the next record is chained on: the last pending line's, or #prev. */
  #tail = GENESIS;
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
    return this.#pending.length;
  }

  /** Chains and buffers one serialized record (a JSON object without `prev`). No I/O. */
  append(body: string): void {
    if (this.#closed) {
      this.#opts.log.error({ audit: body }, 'audit record after the audit log was closed');
      return;
    }
    if (this.#pending.length === 0) this.#pendingBase = this.#tail;
    const line = withPrev(body, this.#tail);
    this.#tail = hashLine(line);
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (this.#pending.length > MAX_PENDING) {
      // The oldest is dropped: the next one was chained on it.
      this.#pendingBase = hashLine(this.#pending.shift()!);
      if (this.#counted > 0) this.#counted--;
      else this.#opts.onWriteFailure?.(1);
    }
    if (this.#pendingBytes > FLUSH_BYTES && !this.#flushing) void this.flush();
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
    if (this.#pending.length) await this.flush();
    this.#closed = true;
    if (this.#pending.length) this.#opts.log.error({ records: this.#pending.length, file: this.#opts.file }, 'AUDIT RECORDS LOST: the audit log could not be written before shutdown');
    await this.#closeFile();
  }

  #startTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = setInterval(() => {
      if (this.#pending.length || (this.#failing && this.#opts.file !== '-')) void this.flush();
    }, Math.max(10, this.#opts.flushInterval));
    this.#timer.unref();
  }

  async #flushOnce(): Promise<void> {
    const o = this.#opts;
    if (o.file === '-') {
      if (!this.#pending.length) return;
      const { lines } = this.#take();
      (o.stdout ?? process.stdout).write(lines.join('\n') + '\n');
      return;
    }
    if (!this.#pending.length) {
      // Nothing to write: while failing, probe so that audit.required stops refusing once the file is back.
      if (this.#failing) await this.#tryOpen();
      return;
    }
    const { lines, base, tail } = this.#take();
    try {
      await withLock(o.file, () => this.#write(lines, base, tail));
      this.#counted = 0;
      if (this.#failing) {
        this.#failing = false;
        o.log.warn({ file: o.file }, 'audit log is writable again');
      }
    } catch (err) {
      // Back in front of what came meanwhile (chained after them): nothing lost, chain intact.
      this.#pending = lines.concat(this.#pending);
      this.#pendingBase = base;
      this.#pendingBytes += lines.reduce((n, b) => n + b.length, 0);
      const fresh = lines.length - this.#counted;
      if (fresh > 0) o.onWriteFailure?.(fresh);
      this.#counted = lines.length;
      this.#fail(err);
      await this.#closeFile();
    }
  }

  /** The pending lines, the hash they were chained on and the hash of the last one. */
  #take(): { lines: string[]; base: string; tail: string } {
    const lines = this.#pending;
    const base = this.#pendingBase;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#pendingBase = this.#tail;
    return { lines, base, tail: this.#tail };
  }

  /** Appends chained lines; chains them again first if the file does not end where they were chained on. */
  async #write(chained: string[], base: string, tail: string): Promise<void> {
    const file = this.#opts.file;
    if (!this.#fh) await this.#openFile();
    let st = await this.#fh!.stat();
    // Moved away (logrotate without SIGUSR2) or deleted: follow the name.
    const byName = await stat(file).catch(() => undefined);
    if (!byName || byName.ino !== this.#ino) {
      await this.#closeFile();
      await this.#openFile();
      st = await this.#fh!.stat();
    }
    let size = st.size;
    const max = this.#opts.maxSize;
    if (max !== undefined && size > 0 && size + chained.reduce((n, b) => n + b.length + 1, 0) > max) {
      await this.#rotate();
      size = 0;
    }
    if (size !== this.#size) {
      // Someone else appended (the CLI), or this is a new file: continue from its real tail.
      const line = size === 0 ? undefined : await lastLineAsync(this.#fh!, size);
      this.#prev = line === undefined ? GENESIS : hashLine(line);
    }
    const last = this.#prev === base ? tail : rechain(chained, this.#prev);
    const buf = Buffer.from(chained.join('\n') + '\n');
    await this.#fh!.write(buf, 0, buf.length, null);
    this.#prev = last;
    this.#size = size + buf.length;
    // What was appended meanwhile continues from the file's new tail.
    if (this.#pending.length === 0) this.#tail = last;
    else if (this.#pendingBase !== last) {
      this.#tail = rechain(this.#pending, last);
      this.#pendingBase = last;
    }
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

  async #openFile(): Promise<void> {
    const file = this.#opts.file;
    await mkdir(dirname(file), { recursive: true });
    const fh = await open(file, 'a+', 0o640);
    this.#fh = fh;
    this.#ino = (await fh.stat()).ino;
    this.#size = -1;
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
      this.#opts.log.error({ err, file: this.#opts.file, pending: this.#pending.length }, 'AUDIT LOG CANNOT BE WRITTEN: records are kept in memory and retried');
    }
  }

  async #closeFile(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    this.#size = -1;
    if (fh) await fh.close().catch(() => undefined);
  }
}
