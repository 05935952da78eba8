/**
 * Test helpers: a real gateway on 127.0.0.1 port 0, started in-process from a
 * YAML text written into the test's own directory, with its log captured.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import type { Test } from 'tap';
import { Gateway } from '../../src/app.js';
import { auditLogOf } from '../../src/audit/plugin.js';
import { createLogger } from '../../src/log.js';

export type Tap = Pick<Test, 'testdir' | 'teardown'>;

export interface StartedGateway {
  gw: Gateway;
  /** Base URL of the plain HTTP listener, e.g. http://127.0.0.1:41234 */
  url: string;
  adminUrl: string;
  dir: string;
  configFile: string;
  /** Every log line the gateway wrote, raw. */
  logs: string[];
  /** Rewrites gateway.yaml (for reload tests). */
  writeConfig(yaml: string): void;
}

export function captureLogger(lines: string[]) {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(l);
      cb();
    },
  });
  return createLogger({ level: 'debug', destination: stream });
}

/**
 * Starts a gateway from `yaml`. The YAML should listen on 127.0.0.1:0; extra
 * files (certs, secrets) may be given relative to the config's directory.
 */
export async function startGateway(t: Tap, yaml: string, files: Record<string, string> = {}, opts: { watchConfig?: boolean } = {}): Promise<StartedGateway> {
  const dir = t.testdir();
  for (const [name, content] of Object.entries(files)) {
    const p = join(dir, name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  const configFile = join(dir, 'gateway.yaml');
  writeFileSync(configFile, yaml);
  const logs: string[] = [];
  const gw = await Gateway.start({ configFile, log: captureLogger(logs), watchConfig: opts.watchConfig ?? false });
  t.teardown(() => gw.close());
  // Per-request lines are written in batches: any read of the array writes the queued ones first.
  const liveLogs = new Proxy(logs, {
    get(target, prop, receiver) {
      gw.flushLogs();
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  const a = gw.addresses;
  return {
    gw,
    url: a.http ? `http://127.0.0.1:${a.http.port}` : '',
    adminUrl: a.admin ? `http://127.0.0.1:${a.admin.port}` : '',
    dir,
    configFile,
    logs: liveLogs,
    writeConfig: (y) => writeFileSync(configFile, y),
  };
}

/** Writes every audit record so far: those of requests that just ended as well (their observers run a turn later). */
export async function flushAudit(gw: Gateway): Promise<void> {
  gw.flushLogs();
  await auditLogOf(gw)!.flush();
}
