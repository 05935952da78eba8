/**
 * The audit log's lock file (`<file>.lock`), shared by the gateway and the
 * CLI, so that appends from both keep one valid hash chain. A lock whose
 * owner process is gone is broken at once, any lock after STALE_MS (see
 * util/lock-file.ts): long enough that a live writer's flush is never cut.
 */
import { acquireLock, LockBusyError } from '../util/lock-file.js';

const STALE_MS = 30_000;
const WAIT_MS = 15_000;

export function lockPath(file: string): string {
  return `${file}.lock`;
}

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

/** Runs `fn` holding the lock: the gateway's flushes and the CLI's account events alike. */
export async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  let release: () => void;
  try {
    release = await acquireLock(lockPath(file), { timeoutMs: WAIT_MS, staleMs: STALE_MS });
  } catch (err) {
    if (err instanceof LockBusyError) throw new LockTimeoutError(`Cannot lock ${file}: ${err.message}`, { cause: err });
    throw err;
  }
  try {
    return await fn();
  } finally {
    release();
  }
}
