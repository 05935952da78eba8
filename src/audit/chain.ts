/**
 * The audit hash chain (DESIGN.md §7): every line carries `prev`, the SHA-256
 * (hex) of the line before it, byte for byte, without its newline. The first
 * line of a fresh log carries GENESIS. A sidecar `<file>.head` records the
 * hash and byte size of the log after the last write, so that an edited or
 * removed *last* line is caught too — a chain alone cannot see those.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { open, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { sha256 } from '../util/sha256.js';

/** `prev` of the first record of a chain. */
export const GENESIS = '0'.repeat(64);

/** SHA-256 (hex) of a line without its newline: a string (as UTF-8) or its bytes. */
export function hashLine(line: string | Uint8Array): string {
  return sha256(line, 'hex');
}

const PREV_KEY = Buffer.from('"prev":"', 'latin1');

/** Appends `"prev":"…"` to a serialized record (a JSON object without prev). */
export function withPrev(body: string, prev: string): string {
  return `${body.slice(0, -1)}${body.length > 2 ? ',' : ''}"prev":"${prev}"}`;
}

/** Hex digits of a `prev` hash. */
const HASH_HEX = 64;
/** Bytes a batch allocates at a time (more for a record that needs it). */
const CHUNK_BYTES = 64 * 1024;
/** Chunks of written batches, reused: fresh memory costs a page fault per 4 kB at first touch. */
const spare: Buffer[] = [];
const MAX_SPARE = 32;

/** Chunks whose bytes are written go back for reuse (up to MAX_SPARE). */
function recycle(chunks: readonly Buffer[]): void {
  for (const c of chunks) if (c.length === CHUNK_BYTES && spare.length < MAX_SPARE) spare.push(c);
}

/** Per record: its chunk, where its line starts, where its prev hole is. */
const META = 3;
/** Records whose places a fresh batch has room for. */
const META_RECORDS = 1024;
/** Place tables of written batches, reused (off the JS heap, like the chunks). */
const spareMeta: Int32Array[] = [];
const MAX_SPARE_META = 4;

/**
 * Records staged as the lines they become, each with a hole for its `prev`:
 * `{…body…,"prev":"<64 bytes>"}` and a newline. A record is encoded once, when
 * it arrives, off the JS heap (issue 6: a batch of record strings waited up
 * to a flush interval, survived two scavenges and was collected as old
 * objects), and so are the places of its line (arrays of them, grown and
 * copied while a batch filled, were promoted too); link() fills the holes
 * in order and hashes each line where it lies; parts() are the bytes to
 * append. withPrev() and hashLine() line by line, without a line string.
 */
export class ChainBatch {
  #chunks: Buffer[] = [];
  #used: number[] = [];
  /** META numbers per record (see META), records 0 … #end - 1. */
  #meta: Int32Array = spareMeta.pop() ?? new Int32Array(META_RECORDS * META);
  #end = 0;
  /** Records before this index were dropped (dropOldest). */
  #first = 0;
  #bytes = 0;

  /** Records staged (and not dropped). */
  get count(): number {
    return this.#end - this.#first;
  }

  /** Bytes of their lines, newlines included. */
  get bytes(): number {
    return this.#bytes;
  }

  #place(chunk: number, start: number, hole: number): void {
    let meta = this.#meta;
    const at = this.#end * META;
    if (at + META > meta.length) {
      const grown = new Int32Array(Math.max(META_RECORDS * META, meta.length * 2));
      grown.set(meta);
      meta = this.#meta = grown;
    }
    meta[at] = chunk;
    meta[at + 1] = start;
    meta[at + 2] = hole;
    this.#end++;
  }

  /** Stages one serialized record: a JSON object, without `prev`. */
  add(body: string): void {
    // An upper bound of the encoded size (3 bytes per UTF-16 unit), with `,"prev":"<64 hex>"}` and the newline.
    const room = body.length * 3 + 77;
    let c = this.#chunks.length - 1;
    if (c < 0 || (this.#used[c] as number) + room > (this.#chunks[c] as Buffer).length) {
      this.#chunks.push((room <= CHUNK_BYTES && spare.pop()) || Buffer.allocUnsafe(Math.max(CHUNK_BYTES, room)));
      this.#used.push(0);
      c++;
    }
    const buf = this.#chunks[c] as Buffer;
    const start = this.#used[c] as number;
    // The body without its closing brace, then `,"prev":"`, the hole, `"}` ("{}" takes no comma).
    let off = start + buf.write(body, start) - 1;
    if (body.length > 2) buf[off++] = 0x2c;
    off += PREV_KEY.copy(buf, off);
    const hole = off;
    off += HASH_HEX;
    buf[off++] = 0x22;
    buf[off++] = 0x7d;
    buf[off++] = 0x0a;
    this.#used[c] = off;
    this.#bytes += off - start;
    this.#place(c, start, hole);
  }

  /** Forgets the oldest record (the batch is over its limit while the log cannot be written). */
  dropOldest(): void {
    if (this.count === 0) return;
    const at = this.#first++ * META;
    this.#bytes -= (this.#meta[at + 2] as number) + HASH_HEX + 3 - (this.#meta[at + 1] as number);
  }

  /**
   * Chains records `from` up to, not including, `to` (0 is the oldest kept)
   * after `prev`; returns the hash of the last of them. Call in order: each
   * call continues from the hash the previous one returned.
   */
  link(prev: string, from = 0, to = this.count): string {
    const meta = this.#meta;
    let last = prev;
    for (let i = this.#first + from; i < this.#first + to; i++) {
      const at = i * META;
      const buf = this.#chunks[meta[at] as number] as Buffer;
      const hole = meta[at + 2] as number;
      buf.write(last, hole, 'latin1');
      last = hashLine(buf.subarray(meta[at + 1] as number, hole + HASH_HEX + 2));
    }
    return last;
  }

  /** The staged lines in order, as views of the batch's buffers. */
  parts(): Buffer[] {
    if (this.count === 0) return [];
    const at = this.#first * META;
    const first = this.#meta[at] as number;
    const out: Buffer[] = [];
    for (let c = first; c < this.#chunks.length; c++) {
      out.push((this.#chunks[c] as Buffer).subarray(c === first ? (this.#meta[at + 1] as number) : 0, this.#used[c] as number));
    }
    return out;
  }

  /** The batch has been written and its parts are no longer referenced: its chunks go back for reuse, and it is empty. */
  release(): void {
    recycle(this.#chunks);
    this.#empty();
  }

  /**
   * For a write that completes later (a stream's callback): gives back this
   * batch's chunks, as they are now, for reuse. Call it once the parts()
   * handed to the write are written, not before.
   */
  releaser(): () => void {
    const chunks = this.#chunks;
    return () => recycle(chunks);
  }

  /**
   * The batch is done with (written, or emptied into another): its place
   * table goes back for reuse and it holds no records. Its chunks stay
   * where they are: parts() handed out may still be in a write.
   */
  dispose(): void {
    if (this.#meta.length > 0 && this.#meta.length <= META_RECORDS * META * 64 && spareMeta.length < MAX_SPARE_META) spareMeta.push(this.#meta);
    this.#meta = new Int32Array(0);
    this.#empty();
  }

  #empty(): void {
    this.#chunks = [];
    this.#used = [];
    this.#end = 0;
    this.#first = 0;
    this.#bytes = 0;
  }

  /** Moves `newer`'s records behind this batch's (a failed batch takes back what arrived meanwhile). */
  append(newer: ChainBatch): void {
    // Records dropped from the front stay dropped; their chunks are released once they hold nothing kept.
    const offset = this.#chunks.length;
    this.#chunks.push(...newer.#chunks);
    this.#used.push(...newer.#used);
    this.#bytes += newer.#bytes;
    for (let i = newer.#first; i < newer.#end; i++) {
      const at = i * META;
      this.#place((newer.#meta[at] as number) + offset, newer.#meta[at + 1] as number, newer.#meta[at + 2] as number);
    }
    const first = this.count === 0 ? this.#chunks.length : (this.#meta[this.#first * META] as number);
    if (first > 0) {
      this.#chunks.splice(0, first);
      this.#used.splice(0, first);
    }
    // The kept records move to the front of the place table, their chunk numbers shifted with the chunks.
    const meta = this.#meta;
    const kept = this.count;
    for (let k = 0; k < kept; k++) {
      const from = (this.#first + k) * META;
      const to = k * META;
      meta[to] = (meta[from] as number) - first;
      meta[to + 1] = meta[from + 1] as number;
      meta[to + 2] = meta[from + 2] as number;
    }
    this.#first = 0;
    this.#end = kept;
    newer.dispose();
  }
}

/**
 * Chains serialized records after `prev`: returns the bytes to append (one
 * line each, newline-terminated) and the hash of its last line.
 */
export function chain(bodies: readonly string[], prev: string): { buf: Buffer; last: string } {
  const batch = new ChainBatch();
  for (const body of bodies) batch.add(body);
  const last = batch.link(prev);
  const parts = batch.parts();
  batch.dispose();
  return { buf: parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts), last };
}

export interface Head {
  /** Hash of the last line. */
  hash: string;
  /** Byte size of the log when that line was the last. */
  size: number;
}

export function headPath(file: string): string {
  return `${file}.head`;
}

export function readHead(file: string): Head | undefined {
  try {
    const h = JSON.parse(readFileSync(headPath(file), 'utf8')) as Partial<Head>;
    return typeof h.hash === 'string' && typeof h.size === 'number' ? { hash: h.hash, size: h.size } : undefined;
  } catch {
    return undefined;
  }
}

/** Atomic (write + rename) so that a crash never leaves a torn head; written under the audit lock. */
export async function writeHead(file: string, head: Head): Promise<void> {
  const tmp = `${headPath(file)}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(head) + '\n');
  await rename(tmp, headPath(file));
}

const CHUNK = 64 * 1024;

/** The last line of a file of `size` bytes (without its newline), or undefined when empty. */
export function lastLineSync(fd: number, size: number): string | undefined {
  return lastLine(size, (buf, pos) => readSync(fd, buf, 0, buf.length, pos));
}

export async function lastLineAsync(fh: FileHandle, size: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let end = size;
  // Skip the final newline, then read backwards until the previous one.
  while (end > 0) {
    const start = Math.max(0, end - CHUNK);
    const buf = Buffer.alloc(end - start);
    await fh.read(buf, 0, buf.length, start);
    const found = scan(buf, chunks, end === size);
    if (found) return found;
    end = start;
  }
  return chunks.length ? trimNl(Buffer.concat(chunks)).toString('utf8') || undefined : undefined;
}

function lastLine(size: number, read: (buf: Buffer, pos: number) => number): string | undefined {
  const chunks: Buffer[] = [];
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - CHUNK);
    const buf = Buffer.alloc(end - start);
    read(buf, start);
    const found = scan(buf, chunks, end === size);
    if (found) return found;
    end = start;
  }
  return chunks.length ? trimNl(Buffer.concat(chunks)).toString('utf8') || undefined : undefined;
}

/** Looks for the newline before the last line in `buf` (the chunk before `chunks`). */
function scan(buf: Buffer, chunks: Buffer[], isTail: boolean): string | undefined {
  let body = buf;
  if (isTail && body.length && body[body.length - 1] === 0x0a) body = body.subarray(0, body.length - 1);
  const nl = body.lastIndexOf(0x0a);
  if (nl === -1) {
    chunks.unshift(body);
    return undefined;
  }
  chunks.unshift(body.subarray(nl + 1));
  const line = Buffer.concat(chunks).toString('utf8');
  return line || undefined;
}

function trimNl(b: Buffer): Buffer {
  return b.length && b[b.length - 1] === 0x0a ? b.subarray(0, b.length - 1) : b;
}

/** The hash a new record must carry as `prev` to continue the file (GENESIS for an empty or missing file). */
export function tailHashSync(file: string): { prev: string; size: number } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { prev: GENESIS, size: 0 };
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const line = lastLineSync(fd, size);
    return { prev: line === undefined ? GENESIS : hashLine(line), size };
  } finally {
    closeSync(fd);
  }
}

export interface VerifyResult {
  ok: boolean;
  records: number;
  /** 1-based number of the first broken line. */
  line?: number;
  message?: string;
}

/**
 * Checks a whole log: every line is a JSON object whose `prev` is the hash of
 * the line before (GENESIS for the first), and the head
 * file, when given, matches a line end. Names the first broken line.
 */
export function verifyText(text: string, opts: { head?: Head | undefined } = {}): VerifyResult {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  let prev: string | undefined;
  let offset = 0;
  let headSeen = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const n = i + 1;
    let rec: { prev?: unknown };
    try {
      rec = JSON.parse(line) as { prev?: unknown };
    } catch {
      return { ok: false, records: i, line: n, message: `line ${n} is not a JSON record (edited or truncated)` };
    }
    if (typeof rec !== 'object' || rec === null || typeof rec.prev !== 'string') {
      return { ok: false, records: i, line: n, message: `line ${n} has no "prev" hash (edited)` };
    }
    if (prev === undefined) {
      // Every log file starts its own chain (a rotated file too), so a removed first line shows.
      if (rec.prev !== GENESIS) return { ok: false, records: i, line: n, message: `line 1 does not start the chain: the first line(s) were removed or edited` };
    } else if (rec.prev !== prev) {
      return { ok: false, records: i, line: n, message: `line ${n} does not follow line ${n - 1}: line ${n - 1} was edited, or a line was removed or reordered there` };
    }
    prev = hashLine(line);
    offset += Buffer.byteLength(line) + 1;
    if (opts.head && offset === opts.head.size) {
      if (opts.head.hash !== prev) return { ok: false, records: i, line: n, message: `line ${n} does not match the recorded head of the log (edited)` };
      headSeen = true;
    }
  }
  if (opts.head && !headSeen) {
    const n = lines.length;
    return { ok: false, records: n, line: n, message: offset < opts.head.size ? `the log is shorter than recorded: its last line(s) were removed (after line ${n})` : `line ${n} or an earlier line was edited: the log does not end where its head says` };
  }
  return { ok: true, records: lines.length };
}
