/**
 * Change detection for the files the gateway reads once and keeps using:
 * gateway.yaml, `{ file }` secrets, TLS certificates.
 *
 * Each file is stamped (inode, size, mtime, ctime) *before* it is read, and
 * polled against that stamp. fs.watchFile is not used: it takes its baseline
 * from its own first stat, made on the libuv thread pool some time after it
 * starts, so a file written in between (a busy pool, a deploy right after
 * start) is taken as the starting state and its change is never reported.
 */
import { statSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';

/** Path → stamp of the state it was read in. */
export type Stamps = Map<string, string>;

const MISSING = 'missing';

function stampOf(s: Stats): string {
  return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}

function stampOfError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' ? MISSING : `error:${code ?? 'unknown'}`;
}

/** The file's stamp now; take it before reading the file. */
export function stampFile(path: string): string {
  try {
    return stampOf(statSync(path));
  } catch (err) {
    return stampOfError(err);
  }
}

function stampFileAsync(path: string): Promise<string> {
  return stat(path).then(stampOf, stampOfError);
}

/**
 * Polls a set of stamped files every `intervalMs`; calls `onChange` once per
 * round in which any differs from its stamp (a file that appears, vanishes
 * or is replaced counts). The timer does not keep the process alive.
 */
export class FilePoll {
  readonly #onChange: (changed: string[]) => void;
  readonly #timer: NodeJS.Timeout;
  #stamps: Stamps = new Map();
  #busy = false;

  constructor(onChange: (changed: string[]) => void, intervalMs = 500) {
    this.#onChange = onChange;
    this.#timer = setInterval(() => void this.#check(), intervalMs);
    this.#timer.unref();
  }

  /** Watches exactly these files from now on, against the given stamps. */
  track(stamps: ReadonlyMap<string, string>): void {
    this.#stamps = new Map(stamps);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async #check(): Promise<void> {
    if (this.#busy) return; // a slow stat (network mount) never piles up rounds
    this.#busy = true;
    try {
      const stamps = this.#stamps;
      const paths = [...stamps.keys()];
      const now = await Promise.all(paths.map(stampFileAsync));
      const changed = paths.filter((p, i) => stamps.get(p) !== now[i]);
      // Tracked anew meanwhile: those stamps are newer than this round's baseline.
      if (changed.length === 0 || stamps !== this.#stamps) return;
      paths.forEach((p, i) => stamps.set(p, now[i] as string));
      this.#onChange(changed);
    } finally {
      this.#busy = false;
    }
  }
}
