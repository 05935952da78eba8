// Shared by bench/run.mjs, bench/paired.mjs and the other bench scripts: child processes that are
// always cleaned up, CPU pinning, readiness probes and wrk.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
export const CPUS = os.cpus().length;
/** Pin only where there are two cores to split (and not when told otherwise). */
export const PIN = CPUS >= 2 && env.BENCH_NO_PIN !== '1';
export const GW_CPU = Number(env.BENCH_GATEWAY_CPU ?? 0);
export const LOAD_CPU = Number(env.BENCH_LOAD_CPU ?? 1);

let logDir;
/** Where child logs go; removed on exit unless BENCH_KEEP_TMP=1. */
export function setWorkDir(dir) {
  logDir = dir;
}


/** Every child we started, so that all of them go away on any exit path. */
const children = new Set();

/** Starts a child; stderr (and stdout, unless `stdoutToNull`) go to a log file in the work dir. */
export function startChild(name, cmd, args, { cwd = process.cwd(), extraEnv = {}, stdoutToNull = false } = {}) {
  const logFile = join(logDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const out = stdoutToNull ? openSync('/dev/null', 'w') : fd;
  const child = spawn(cmd, args, { cwd, env: { ...env, ...extraEnv }, stdio: ['ignore', out, fd] });
  closeSync(fd);
  if (out !== fd) closeSync(out);
  child.benchName = name;
  child.logFile = logFile;
  children.add(child);
  child.on('exit', (code, signal) => {
    children.delete(child);
    child.exited = { code, signal };
  });
  return child;
}

export function logTail(child, lines = 15) {
  try {
    return readFileSync(child.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Every proxy under test is pinned to the same core and stays up for the
 * whole run, so while one is measured the others sit idle beside it — and an
 * idle Node process is not silent: its timers (an event-loop-delay monitor
 * at 100 Hz, file polls, flushes) and its GC take about 10 ms of CPU a
 * second each, and each wakeup preempts the process being measured.
 * withOthersPaused() stops those bystanders (SIGSTOP) for the length of a
 * measurement and continues them afterwards (SIGCONT), also on failure.
 * BENCH_NO_PAUSE=1 leaves them running (to see the difference).
 */
export const PAUSE_OTHERS = env.BENCH_NO_PAUSE !== '1';
const paused = new Set();

export async function withOthersPaused(running, all, fn) {
  const keep = new Set(running.flatMap((pid) => processTree(pid)));
  const stop = !PAUSE_OTHERS ? [] : [...new Set(all.flatMap((pid) => processTree(pid)))].filter((p) => !keep.has(p));
  for (const p of stop) {
    try {
      process.kill(p, 'SIGSTOP');
      paused.add(p);
    } catch {}
  }
  try {
    return await fn();
  } finally {
    resumeAll();
  }
}

function resumeAll() {
  for (const p of paused) {
    try {
      process.kill(p, 'SIGCONT');
    } catch {}
  }
  paused.clear();
}

export async function stopAll() {
  resumeAll();
  const list = [...children];
  for (const c of list) c.kill('SIGTERM');
  // A gateway writing a CPU profile on exit may need a while.
  const deadline = Date.now() + (env.BENCH_CPU_PROF === '1' ? 30_000 : 5000);
  while (children.size > 0 && Date.now() < deadline) await sleep(50);
  for (const c of children) c.kill('SIGKILL');
}

// Last resort: synchronous kill on any exit, including an uncaught error.
process.on('exit', () => {
  resumeAll();
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
  if (logDir && env.BENCH_KEEP_TMP !== '1') rmSync(logDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\nbench: ${sig}: stopping every child process`);
    void stopAll().finally(() => process.exit(130));
  });
}

/**
 * Node flags for a proxy: those given in `value` (an environment variable,
 * whitespace-separated; empty for none) when it is set, otherwise
 * Gatehouse's production flags as built into `root`/dist
 * (src/cli/node-flags.ts; none in a build from before they existed).
 */
export async function nodeFlagsFor(value, root) {
  if (value !== undefined) return value.split(/\s+/).filter(Boolean);
  const file = join(root, 'dist', 'cli', 'node-flags.js');
  return existsSync(file) ? [...((await import(pathToFileURL(file).href)).PRODUCTION_NODE_FLAGS ?? [])] : [];
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** wrk's `Name: value` header lines as the header object an HTTP client takes. */
export function headerObject(lines) {
  return Object.fromEntries(lines.map((h) => [h.slice(0, h.indexOf(':')), h.slice(h.indexOf(':') + 1).trim()]));
}

/** One GET; resolves with the status (or rejects on a connection error). */
export function probe(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
  });
}

/** Polls until the URL answers; returns the status. Fails if the child died. */
export async function waitUp(url, headers, child, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (child?.exited) throw new Error(`${child.benchName} exited (${JSON.stringify(child.exited)}):\n${logTail(child)}`);
    try {
      return await probe(url, headers);
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms (${last?.message})${child ? `:\n${logTail(child)}` : ''}`);
}

export function pinned(cpu, cmd, args) {
  return PIN ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
}

// ---------------------------------------------------------------- tools

export function which(bin) {
  const r = spawnSync('sh', ['-c', `command -v ${bin} || ls /usr/sbin/${bin} 2>/dev/null`], { encoding: 'utf8' });
  return r.stdout.trim().split('\n')[0] || undefined;
}

export function ensureTools() {
  const missing = [['wrk', 'wrk'], ['nginx', 'nginx']].filter(([bin]) => !which(bin));
  if (missing.length === 0) return;
  const pkgs = missing.map(([, p]) => p);
  if (env.BENCH_NO_INSTALL === '1') throw new Error(`missing ${pkgs.join(', ')} (BENCH_NO_INSTALL=1): apt-get install -y ${pkgs.join(' ')}`);
  console.log(`installing ${pkgs.join(', ')} with apt-get…`);
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const run = (args) => {
    const [cmd, ...rest] = [...sudo, ...args];
    const r = spawnSync(cmd, rest, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed (exit ${r.status})`);
  };
  run(['apt-get', 'update']);
  run(['apt-get', 'install', '-y', ...pkgs]);
  // Debian starts the packaged nginx service on port 80; the benchmark runs its own.
  if (pkgs.includes('nginx')) spawnSync('sh', ['-c', 'service nginx stop || systemctl stop nginx || true'], { stdio: 'ignore' });
}

export function version(cmd, args, re) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const m = re.exec(`${r.stdout}${r.stderr}`);
  return m ? m[1] : 'unknown';
}

// ---------------------------------------------------------------- wrk

const UNIT = { us: 1e-3, ms: 1, s: 1e3, m: 60e3 };

export function parseWrk(out) {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) throw new Error(`cannot read wrk output:\n${out}`);
  const lat = {};
  for (const m of out.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$/gm)) lat[m[1]] = Number(m[2]) * UNIT[m[3]];
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  return {
    rps: Number(rps[1]),
    p50: lat['50'],
    p75: lat['75'],
    p90: lat['90'],
    p99: lat['99'],
    requests,
    non2xx,
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

/**
 * One wrk run. wrk now and then exits 0 having printed nothing on this host;
 * such a run is repeated once rather than failing a whole benchmark.
 */
export async function wrk(target, seconds, connections) {
  try {
    return await wrkOnce(target, seconds, connections);
  } catch (err) {
    if (!/cannot read wrk output:\n\s*$/.test(err.message)) throw err;
    return wrkOnce(target, seconds, connections);
  }
}

const HEADER_ORDER = new URL('header-order.lua', import.meta.url).pathname;

function wrkOnce(target, seconds, connections) {
  // header-order.lua: the same header order in every run (see there).
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '5s', '-s', HEADER_ORDER];
  for (const h of target.headers ?? []) args.push('-H', h);
  args.push(target.url);
  const [cmd, a] = pinned(LOAD_CPU, 'wrk', args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      children.delete(child);
      if (code !== 0) return reject(new Error(`wrk exited ${code}:\n${out}`));
      try {
        resolve(parseWrk(out));
      } catch (err) {
        reject(err);
      }
    });
  });
}


// ---------------------------------------------------------------- CPU time

const TICK_US = 1e6 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

/** A process and its descendants (nginx: master and workers). */
export function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const c of readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {}
  }
  return out;
}

/**
 * CPU time (user + system, all threads) used so far by these processes, in
 * µs. Unlike requests/s, CPU time per request hardly depends on what else
 * the machine is doing: the figure to compare on a shared machine.
 */
export function cpuMicros(pids) {
  const t = cpuTimes(pids);
  return t.user + t.sys;
}

/** cpuMicros() in its two parts: user-space and kernel CPU time, in µs. */
export function cpuTimes(pids) {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      user += Number(f[11]);
      sys += Number(f[12]);
    } catch {}
  }
  return { user: user * TICK_US, sys: sys * TICK_US };
}

// ---------------------------------------------------------------- JWT issuer

const ISSUER = 'https://idp.bench.invalid/realms/bench';
let jwks;

/**
 * A local JWKS endpoint (in this process: a gateway fetches it at start
 * only) and an ES256 token for wrk; `issuers` is the gateway.yaml block
 * naming it `local`, audience `bench`.
 */
export async function startJwks() {
  if (jwks) return jwks;
  const { SignJWT, exportJWK, generateKeyPair } = await import('jose');
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' };
  const body = JSON.stringify({ keys: [jwk] });
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  const token = await new SignJWT({ scope: 'bench.read profile' })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench-1', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience('bench')
    .setSubject('bench-client')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);
  const uri = `http://127.0.0.1:${server.address().port}/jwks.json`;
  jwks = { uri, token, issuers: `issuers:\n  local:\n    issuer: ${ISSUER}\n    jwks_uri: ${uri}\n    audience: bench\n    algorithms: [ES256]\n` };
  return jwks;
}
