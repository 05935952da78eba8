/**
 * Appending audit events from another process than the gateway (the CLI:
 * `accounts create/rotate/revoke/delete`). Takes the same lock file as the
 * running gateway, reads the file's last line for the chain, appends, and
 * updates the head: the chain stays valid however the writers interleave.
 */
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { chain, GENESIS, hashLine, lastLineSync, writeHeadSync } from './chain.js';
import { withLockSync } from './lock.js';
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
 * while a gateway writes the same file. Synchronous: for the CLI.
 */
export function appendAuditEvents(file: string, events: readonly AuditEvent[]): void {
  const bodies = events.map((e) => eventBody(e));
  if (file === '-') {
    process.stdout.write(chain(bodies, GENESIS).buf);
    return;
  }
  mkdirSync(dirname(file), { recursive: true });
  withLockSync(file, () => {
    const fd = openSync(file, 'a+', 0o640);
    try {
      const size = fstatSync(fd).size;
      const line = size === 0 ? undefined : lastLineSync(fd, size);
      const { buf, last } = chain(bodies, line === undefined ? GENESIS : hashLine(line));
      writeSync(fd, buf, 0, buf.length);
      writeHeadSync(file, { hash: last, size: size + buf.length });
    } finally {
      closeSync(fd);
    }
  });
}

/** The audit file a configuration names (relative to gateway.yaml's directory). */
export function auditFileFor(configFile: string, env: NodeJS.ProcessEnv = process.env): string {
  const { config, source } = loadConfigFile(configFile, env);
  return auditFilePath(config.audit.file, source.baseDir);
}

/** For the accounts CLI: records one event in the audit log of `configFile`. */
export function recordAccountEvent(configFile: string, e: AuditEvent, env: NodeJS.ProcessEnv = process.env): void {
  appendAuditEvents(auditFileFor(configFile, env), [e]);
}
