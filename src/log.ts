/**
 * The operator log: pino JSON lines. Redaction is a second line of defence —
 * no code path logs a token, secret or Authorization value on purpose.
 */
import pino, { type Logger } from 'pino';
import sonicBoom from 'sonic-boom';

// sonic-boom is CommonJS (module.exports = SonicBoom); its types say `export default`.
const SonicBoom = sonicBoom as unknown as typeof sonicBoom.SonicBoom;
type SonicBoom = sonicBoom.SonicBoom;

export const REDACT_PATHS = [
  'authorization',
  'token',
  'secret',
  'password',
  'client_secret',
  '*.authorization',
  '*.token',
  '*.secret',
  '*.password',
  '*.client_secret',
  '*.access_token',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env.GATEHOUSE_LOG_LEVEL ?? 'info',
      base: { service: 'gatehouse' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? new LogDestination(1),
  );
}

/** Destinations to flush when the process exits: one 'exit' listener for all of them, no strong reference. */
const toFlush = new Set<WeakRef<SonicBoom>>();

function flushOnExit(boom: SonicBoom): void {
  if (toFlush.size === 0) {
    process.once('exit', () => {
      for (const ref of toFlush) {
        try {
          ref.deref()?.flushSync();
        } catch {
          // Nothing more can be done on exit.
        }
      }
    });
  }
  toFlush.add(new WeakRef(boom));
}

/**
 * Standard output for the logger: sonic-boom (pino's own asynchronous
 * destination) in buffer mode, so that the per-request lines, batched in
 * Buffers (LineBatch), are written as they are — in its default mode
 * sonic-boom turns every write back into a string and spends more CPU per
 * line on it than the line took to build. pino's own lines (strings, rare)
 * are encoded here. Flushed synchronously on exit, as pino.destination() is.
 */
export class LogDestination {
  readonly #boom: SonicBoom;

  constructor(fd: number) {
    const boom = new SonicBoom({ fd, sync: false, contentMode: 'buffer' });
    this.#boom = boom;
    boom.on('error', (err: NodeJS.ErrnoException) => {
      // The reader went away (EPIPE): stop logging rather than crash.
      if (err.code === 'EPIPE') boom.write = () => true;
    });
    flushOnExit(boom);
  }

  write(chunk: string | Buffer): boolean {
    return this.#boom.write((typeof chunk === 'string' ? Buffer.from(chunk) : chunk) as unknown as string);
  }

  flush(cb?: (err?: Error) => void): void {
    this.#boom.flush(cb);
  }

  flushSync(): void {
    this.#boom.flushSync();
  }
}

/** What the per-request line carries before the record's own fields, in the shape of every other line of createLogger(). */
export const REQUEST_LINE_FIELDS = '"level":"info","service":"gatehouse","msg":"request"';

function flushBatch(batch: LineBatch): void {
  batch.flush();
}

/** How long a request line may wait for others to be written with it. */
export const LINE_BATCH_MS = 100;
/** Bytes of lines that are written at once. */
const LINE_BATCH_BYTES = 64 * 1024;

/**
 * Lines written straight to a logger's destination in batches: the
 * per-request line (issue 6). Going through pino, each line was serialized
 * again, and its destination started one thread-pool write per request
 * under load; joining and encoding strings in batches still cost about
 * 3 µs a line. Here a record is encoded once into a Buffer behind the
 * fixed fields, and the destination gets at most one write per
 * LINE_BATCH_MS (or per LINE_BATCH_BYTES), like nginx's buffered access log.
 * A line after a quiet spell is written in the same turn of the event loop,
 * so that a lightly used gateway logs without delay. flush() writes at once
 * (shutdown, tests).
 */
export class LineBatch {
  readonly #dest: pino.DestinationStream;
  readonly #prefix: Buffer;
  #buf: Buffer | undefined = undefined;
  #off = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  #immediate: NodeJS.Immediate | undefined = undefined;
  #lastWrite = 0;

  /** `fields`: JSON members (`"a":1,"b":"x"`) put before each record's own. */
  constructor(log: Logger, fields: string = REQUEST_LINE_FIELDS) {
    this.#dest = (log as unknown as Record<symbol, pino.DestinationStream>)[pino.symbols.streamSym]!;
    this.#prefix = Buffer.from(`{${fields}`);
  }

  /** Queues one record (a serialized JSON object) as a line, behind the fixed fields. */
  push(record: string): void {
    // An upper bound of the encoded size: no scan of the record.
    const room = this.#prefix.length + record.length * 3 + 2;
    if (this.#buf === undefined || this.#off + room > this.#buf.length) {
      this.#writeOut();
      this.#buf = Buffer.allocUnsafe(Math.max(LINE_BATCH_BYTES, room));
      this.#off = 0;
    }
    const buf = this.#buf;
    const start = this.#off + this.#prefix.copy(buf, this.#off);
    let off = start + buf.write(record, start);
    if (off - start > 2) buf[start] = 0x2c; // the record's "{" becomes the "," after the fixed fields
    else off = start + buf.write('}', start); // an empty record: just the fixed fields
    buf[off++] = 0x0a;
    this.#off = off;
    if (this.#timer === undefined && this.#immediate === undefined) {
      const wait = this.#lastWrite + LINE_BATCH_MS - performance.now();
      if (wait <= 0) this.#immediate = setImmediate(flushBatch, this).unref();
      else this.#timer = setTimeout(flushBatch, wait, this).unref();
    }
  }

  /** Writes every queued line now. */
  flush(): void {
    clearTimeout(this.#timer);
    clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    this.#writeOut();
  }

  #writeOut(): void {
    const buf = this.#buf;
    if (buf === undefined || this.#off === 0) return;
    this.#dest.write(buf.subarray(0, this.#off) as unknown as string);
    this.#buf = undefined;
    this.#off = 0;
    this.#lastWrite = performance.now();
  }
}
