/**
 * An exclusive lock file (created with O_EXCL) shared between processes: the
 * token store and the audit log take one each, so that the gateway and the
 * CLI never interleave their writes.
 *
 * - The owner (pid, host, time, a nonce) is written into the file.
 * - A lock whose owner process is gone (same host) is broken at once; any
 *   lock older than `staleMs` is broken too (a hung or remote owner). Either
 *   is re-read right before it is removed, so as not to remove a lock taken
 *   meanwhile.
 * - Release removes the lock only while it is still ours.
 */
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** The lock stayed held by a live owner past the timeout; `holder` says by whom. */
export class LockBusyError extends Error {
  override name = 'LockBusyError';
  readonly holder: string;

  constructor(lockPath: string, holder: string) {
    super(`"${lockPath}" is held (${holder})`);
    this.holder = holder;
  }
}

export interface LockOptions {
  /** Give up (LockBusyError) after waiting this long for a live owner. */
  timeoutMs: number;
  /** Break a lock older than this, whoever holds it. */
  staleMs: number;
}

/** Takes the lock, waiting (asynchronously) while another live owner holds it; returns its release. */
export async function acquireLock(lockPath: string, opts: LockOptions): Promise<() => void> {
  const deadline = Date.now() + opts.timeoutMs;
  const mine = JSON.stringify({ pid: process.pid, host: hostname(), time: new Date().toISOString(), nonce: randomBytes(6).toString('hex') });
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      try {
        writeSync(fd, mine);
      } finally {
        closeSync(fd);
      }
      return () => {
        try {
          // Only remove our own lock (it may have been broken as stale and re-taken).
          if (readFileSync(lockPath, 'utf8') === mine) unlinkSync(lockPath);
        } catch {
          // gone already
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = breakIfStale(lockPath, opts.staleMs);
    if (held === undefined) continue;
    if (Date.now() > deadline) throw new LockBusyError(lockPath, held);
    await sleep(5 + Math.floor(Math.random() * 25));
  }
}

/** Breaks a stale lock (→ undefined: try again at once), or describes its live holder. */
function breakIfStale(lockPath: string, staleMs: number): string | undefined {
  let text: string;
  let mtime: number;
  try {
    text = readFileSync(lockPath, 'utf8');
    mtime = statSync(lockPath).mtimeMs;
  } catch {
    return undefined; // released meanwhile
  }
  let owner: { pid?: number; host?: string } = {};
  try {
    owner = JSON.parse(text) as typeof owner;
  } catch {
    // Being written right now, left empty by a crash, or an older format: judge by age only.
  }
  const age = Date.now() - mtime;
  let dead = false;
  if (typeof owner.pid === 'number' && owner.host === hostname() && owner.pid !== process.pid) {
    try {
      process.kill(owner.pid, 0);
    } catch (err) {
      dead = (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  if (dead || age > staleMs) {
    try {
      if (readFileSync(lockPath, 'utf8') === text) unlinkSync(lockPath);
    } catch {
      // someone else broke it
    }
    return undefined;
  }
  return `by pid ${owner.pid ?? '?'} on ${owner.host ?? '?'} for ${Math.round(age)} ms`;
}
