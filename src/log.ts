/**
 * The operator log: pino JSON lines. Redaction is a second line of defence —
 * no code path logs a token, secret or Authorization value on purpose.
 */
import pino, { type Logger } from 'pino';

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
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** The start of the per-request line, in the shape of every other line of createLogger(). */
export const REQUEST_LINE_PREFIX = '{"level":"info","service":"gatehouse","msg":"request",';

function flushBatch(batch: LineBatch): void {
  batch.flush();
}

/** How long a request line may wait for others to be written with it. */
export const LINE_BATCH_MS = 100;
/** Queued lines that trigger a write at once. */
const LINE_BATCH_MAX = 512;

/**
 * Lines written straight to a logger's destination in batches: the
 * per-request line (issue 6). pino's own write path serializes each line,
 * and its asynchronous destination (sonic-boom) starts a write through the
 * thread pool as soon as the previous one is done — under load about one
 * write per request — and re-measures its growing buffer on every line;
 * together they cost more CPU per request than proxying it. Here a line is
 * one string concatenation, and the destination gets at most one write per
 * LINE_BATCH_MS (or per LINE_BATCH_MAX lines), like nginx's buffered
 * access log. A line after a quiet spell is written in the same turn of the
 * event loop, so that a lightly used gateway logs without delay. flush()
 * writes at once (shutdown, tests).
 */
export class LineBatch {
  readonly #dest: pino.DestinationStream;
  #lines: string[] = [];
  #timer: NodeJS.Timeout | undefined = undefined;
  #immediate: NodeJS.Immediate | undefined = undefined;
  #lastWrite = 0;

  constructor(log: Logger) {
    this.#dest = (log as unknown as Record<symbol, pino.DestinationStream>)[pino.symbols.streamSym]!;
  }

  /** Queues one newline-terminated line. */
  push(line: string): void {
    const n = this.#lines.push(line);
    if (n >= LINE_BATCH_MAX) this.flush();
    else if (this.#timer === undefined && this.#immediate === undefined) {
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
    if (this.#lines.length === 0) return;
    const text = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join('');
    this.#lines = [];
    this.#lastWrite = performance.now();
    this.#dest.write(text);
  }
}
