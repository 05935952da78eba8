/**
 * Appending audit events from another process than the gateway (the CLI:
 * `accounts create/rotate/revoke/delete`). Takes the same lock file as the
 * running gateway, reads the file's last line for the chain, appends, and
 * updates the head: the chain stays valid however the writers interleave.
 */
import { mkdir, open } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { chain, GENESIS, hashLine, lastLineAsync, writeHead } from './chain.js';
import { withLock } from './lock.js';
import { auditFilePath } from './plugin.js';

export type AccountEvent = 'account.created' | 'token.rotated' | 'token.revoked' | 'account.deleted';

export interface AuditEvent {
  event: AccountEvent | (string & {});
  /** The service account concerned. */
  account?: string;
  /** The token's key id (never the token). */
  key_id?: string;
  reason?: string;
  /** Anything else worth keeping (no secrets). */
  [field: string]: unknown;
}

/** Who ran the command: the OS user, as a principal of kind "operator". */
function actor(): { kind: string; subject: string } {
  let name = process.env.USER ?? 'unknown';
  try {
    name = userInfo().username;
  } catch {
    /* no passwd entry (containers) */
  }
  return { kind: 'operator', subject: name };
}

/** Serializes events the way the gateway does (prev added when chained). */
export function eventBody(e: AuditEvent, now = new Date()): string {
  const { event, ...rest } = e;
  return JSON.stringify({ time: now.toISOString(), request_id: null, event, principal: actor(), ...rest });
}

/**
 * Appends events to an audit file (absolute path, or "-" for stdout), safely
 * while a gateway writes the same file. Asynchronous, and so is its wait for
 * the lock: a caller in the same process as a gateway (the admin tooling,
 * the tests) lets that gateway finish the flush that holds the lock; a
 * synchronous wait blocked it until the lock went stale (10 s) and then
 * broke it in the middle of the flush.
 */
export async function appendAuditEvents(file: string, events: readonly AuditEvent[]): Promise<void> {
  const bodies = events.map((e) => eventBody(e));
  if (file === '-') {
    process.stdout.write(chain(bodies, GENESIS).buf);
    return;
  }
  await mkdir(dirname(file), { recursive: true });
  await withLock(file, async () => {
    const fh = await open(file, 'a+', 0o640);
    try {
      const { size } = await fh.stat();
      const line = size === 0 ? undefined : await lastLineAsync(fh, size);
      const { buf, last } = chain(bodies, line === undefined ? GENESIS : hashLine(line));
      await fh.write(buf, 0, buf.length);
      await writeHead(file, { hash: last, size: size + buf.length });
    } finally {
      await fh.close();
    }
  });
}

/** The audit file a configuration names (relative to gateway.yaml's directory). */
export function auditFileFor(configFile: string, env: NodeJS.ProcessEnv = process.env): string {
  const { config, source } = loadConfigFile(configFile, env);
  return auditFilePath(config.audit.file, source.baseDir);
}
