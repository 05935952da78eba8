/**
 * Wires the audit log into the gateway: one record per request (observer),
 * `config.reloaded` events (reload hook), `audit.required` (gate), the final
 * flush (close hook). `auditLogOf(gw)` gives serve.ts the log for SIGUSR2.
 */
import { isAbsolute, resolve } from 'node:path';
import type { Gateway, GatewayPlugin } from '../app.js';
import type { Runtime } from '../config/compile.js';
import { GatewayError } from '../errors.js';
import { AuditLog } from './audit-log.js';
import { recordOf } from './record.js';

const logs = new WeakMap<Gateway, AuditLog>();

/** The audit log of a running gateway (for SIGUSR2 → reopen). */
export function auditLogOf(gw: Gateway): AuditLog | undefined {
  return logs.get(gw);
}

/** `audit.file` resolved against the directory of gateway.yaml; "-" is stdout. */
export function auditFilePath(file: string, baseDir: string): string {
  return file === '-' || isAbsolute(file) ? file : resolve(baseDir, file);
}

function settings(rt: Runtime) {
  const a = rt.config.audit;
  return { file: auditFilePath(a.file, rt.source.baseDir), flushInterval: a.flush_interval, maxSize: a.max_size };
}

export const auditPlugin: GatewayPlugin = async (gw) => {
  const audit = await AuditLog.open({
    ...settings(gw.runtime),
    log: gw.log,
    onWriteFailure: (n) => gw.metrics.auditWriteFailures.inc(n),
  });
  logs.set(gw, audit);
  if (audit.failing) gw.log.error({ file: audit.file, required: gw.runtime.config.audit.required }, 'the audit log cannot be opened');
  gw.observers.push((ctx) => audit.append(recordOf(ctx)));
  gw.addGate(() => {
    if (audit.failing && gw.runtime.config.audit.required) {
      throw new GatewayError('GW_AUDIT_UNAVAILABLE', `the audit log ${audit.file} cannot be written (audit.required)`, { reason: 'audit_unavailable' });
    }
  });
  gw.reloadHooks.push((result, rt) => {
    audit.event('config.reloaded', {
      principal: null,
      decision: result.ok ? 'allow' : 'deny',
      reason: result.ok ? 'reloaded' : 'config_invalid',
      routes: rt.routes.length,
    });
    if (result.ok) void audit.configure(settings(rt));
  });
  gw.closeHooks.push(() => audit.close());
};
