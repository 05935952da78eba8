/**
 * A lock file (`<file>.lock`, created with O_EXCL) shared by the gateway and
 * the CLI, so that appends from both keep one valid hash chain. A lock older
 * than STALE_MS is from a crashed writer and is broken.
 */
import { open, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export const STALE_MS = 10_000;
const WAIT_MS = 15_000;

export function lockPath(file: string): string {
  return `${file}.lock`;
}

function isStale(mtimeMs: number): boolean {
  return Date.now() - mtimeMs > STALE_MS;
}

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

/** Runs `fn` holding the lock: the gateway's flushes and the CLI's account events alike. */
export async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = lockPath(file);
  const deadline = Date.now() + WAIT_MS;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    try {
      const fh = await open(lock, 'wx');
      await fh.write(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await stat(lock).catch(() => undefined);
      if (st && isStale(st.mtimeMs)) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) throw new LockTimeoutError(`Cannot lock ${file}: ${lock} is held by another process`);
      await sleep(delay);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}
