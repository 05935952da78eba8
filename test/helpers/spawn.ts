/** Runs the built CLI (`dist/cli/bin.js`) as a child process; `npm test` builds first. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Tap } from './gateway.js';

export const BIN = fileURLToPath(new URL('../../dist/cli/bin.js', import.meta.url));

/** The log line of a started gateway's HTTP listener; group 1 is its port. */
export const LISTENING_HTTP = /"address":"http:\/\/127\.0\.0\.1:(\d+)","msg":"listening \(HTTP\)"/;

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  /** Waits until stdout has a line matching `re`; resolves with the match. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

/** `nodeFlags`: node's own options, before the script (e.g. PRODUCTION_NODE_FLAGS). */
export function spawnCli(t: Tap, args: string[], env: NodeJS.ProcessEnv = {}, nodeFlags: readonly string[] = []): Spawned {
  const child = spawn(process.execPath, [...nodeFlags, BIN, ...args], { env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of [...waiters]) w();
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((r) => child.on('exit', (code, signal) => r(code ?? signal ?? -1)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (!m) return false;
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check as () => void), 1);
          resolve(m);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(check as () => void), 1);
          reject(new Error(`timed out waiting for ${re} in stdout:\n${out}\nstderr:\n${err}`));
        }, timeoutMs);
        if (!check()) waiters.push(check as () => void);
      });
    },
  };
}

/** Runs the CLI to completion. */
export async function runCli(t: Tap, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const s = spawnCli(t, args, env);
  const code = await s.exited;
  return { code, stdout: s.stdout(), stderr: s.stderr() };
}
