#!/usr/bin/env node
// `npm run bench` (issue 6): Gatehouse against a direct call, nginx and Node
// peers, in one run. On a 2-core machine the proxy under test runs on core 0
// and wrk + the upstream on core 1 (taskset). Every scenario is measured in
// each round, alternating, and the medians over rounds are reported with
// their ratios to the direct call, nginx and the bare reference proxy.
//
// Environment (all optional):
//   BENCH_QUICK=1            quick mode: 1 round of 2 s, 1 s warm-up
//   BENCH_DURATION=5         seconds per measurement
//   BENCH_ROUNDS=3           rounds (each round measures every scenario once)
//   BENCH_WARMUP=2           seconds of warm-up per scenario before round 1
//   BENCH_CONNECTIONS=50     wrk connections (1 wrk thread)
//   BENCH_ONLY=1,3a,4        only these scenarios (1 and 3a are references)
//   BENCH_NO_BUILD=1         do not rebuild dist/ first
//   BENCH_NO_INSTALL=1       do not apt-get install wrk/nginx when missing
//   BENCH_LOG_LEVEL=info     Gatehouse log level (default as shipped: info)
//   BENCH_KEEP_TMP=1         keep the temporary directory (configs, logs)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const BENCH = join(ROOT, 'bench');
const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const DURATION = Number(env.BENCH_DURATION ?? (QUICK ? 2 : 5));
const ROUNDS = Number(env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
const WARMUP = Number(env.BENCH_WARMUP ?? (QUICK ? 1 : 2));
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 50);
const ONLY = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const LOG_LEVEL = env.BENCH_LOG_LEVEL ?? 'info';
const PATH = '/bench/hello';

// ---------------------------------------------------------------- processes

/** Every child we started, so that all of them go away on any exit path. */
const children = new Set();
let tmp;

function startChild(name, cmd, args, { cwd = ROOT, extraEnv = {} } = {}) {
  const logFile = join(tmp, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { cwd, env: { ...env, ...extraEnv }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.benchName = name;
  child.logFile = logFile;
  children.add(child);
  child.on('exit', (code, signal) => {
    children.delete(child);
    child.exited = { code, signal };
  });
  return child;
}

function logTail(child, lines = 15) {
  try {
    return readFileSync(child.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function stopAll() {
  const list = [...children];
  for (const c of list) c.kill('SIGTERM');
  const deadline = Date.now() + 3000;
  while (children.size > 0 && Date.now() < deadline) await sleep(50);
  for (const c of children) c.kill('SIGKILL');
}

// Last resort: synchronous kill on any exit, including an uncaught error.
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
  if (tmp && env.BENCH_KEEP_TMP !== '1') rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\nbench: ${sig}: stopping every child process`);
    void stopAll().finally(() => process.exit(130));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** One GET; resolves with the status (or rejects on a connection error). */
function probe(url, headers = {}) {
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
async function waitUp(url, headers, child, timeoutMs = 20_000) {
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

function pinned(cpu, cmd, args) {
  return PIN ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
}

// ---------------------------------------------------------------- tools

function which(bin) {
  const r = spawnSync('sh', ['-c', `command -v ${bin} || ls /usr/sbin/${bin} 2>/dev/null`], { encoding: 'utf8' });
  return r.stdout.trim().split('\n')[0] || undefined;
}

function ensureTools() {
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

function version(cmd, args, re) {
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

function wrk(target, seconds) {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '--timeout', '5s'];
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

// ---------------------------------------------------------------- servers

let upstreamOrigin;

async function startUpstream() {
  const port = await freePort();
  const [cmd, args] = pinned(LOAD_CPU, process.execPath, [join(BENCH, 'upstream.mjs'), String(port)]);
  const child = startChild('upstream', cmd, args);
  upstreamOrigin = `http://127.0.0.1:${port}`;
  await waitUp(upstreamOrigin + PATH, {}, child);
}

async function startNodeProxy(name, script) {
  const port = await freePort();
  const [cmd, args] = pinned(GW_CPU, process.execPath, [join(BENCH, script), String(port), upstreamOrigin]);
  const child = startChild(name, cmd, args);
  const url = `http://127.0.0.1:${port}${PATH}`;
  const status = await waitUp(url, {}, child);
  if (status !== 200) throw new Error(`${name} answered ${status}:\n${logTail(child)}`);
  return { url };
}

async function startNginx() {
  const port = await freePort();
  const dir = join(tmp, 'nginx');
  mkdirSync(dir, { recursive: true });
  const upstreamPort = new URL(upstreamOrigin).port;
  // A plain reverse proxy as an operator would write it: 1 worker, upstream
  // keep-alive, buffered access log.
  const conf = `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log ${dir}/access.log combined buffer=64k flush=1s;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000;
  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const [cmd, args] = pinned(GW_CPU, which('nginx'), ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  const child = startChild('nginx', cmd, args);
  const url = `http://127.0.0.1:${port}${PATH}`;
  const status = await waitUp(url, {}, child);
  if (status !== 200) throw new Error(`nginx answered ${status}`);
  return { url };
}

/** A gateway.yaml for one scenario: one upstream, one route on /bench/**. */
function gatewayYaml({ port, route, issuers = '', admin, audit }) {
  return `# generated by bench/run.mjs
server:
  listen: 127.0.0.1:${port}
${admin ? `  admin: 127.0.0.1:${admin}\n` : ''}store: file:./accounts.json
roles:
  admin: { includes: [viewer] }
  viewer: {}
${issuers}upstreams:
  up:
    url: ${upstreamOrigin}
    timeout: 10s
routes:
  - name: bench
    match: { path: /bench/** }
    upstream: up
${route}audit:
  file: ${audit ?? './audit.log'}
`;
}

const GATEHOUSE_BIN = join(ROOT, 'dist', 'cli', 'bin.js');

async function startGatehouse(name, yaml, headers = []) {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml(dir));
  const [cmd, args] = pinned(GW_CPU, process.execPath, [GATEHOUSE_BIN, 'start', '-c', file]);
  const child = startChild(name, cmd, args, { cwd: dir, extraEnv: { GATEHOUSE_LOG_LEVEL: LOG_LEVEL, NODE_ENV: 'production' } });
  return { child, dir, file };
}

// ---------------------------------------------------------------- scenarios

/**
 * Each scenario's setup returns the wrk target ({ url, headers }) or
 * { skip: reason }. Setups run once, before the rounds; servers stay up.
 */
const SCENARIOS = [
  { id: '1', key: 'direct', title: 'upstream directly', setup: async () => ({ url: upstreamOrigin + PATH }) },
  { id: '2', key: 'nginx', title: 'nginx (1 worker, keep-alive)', setup: startNginx },
  { id: '3a', key: 'bare', title: 'bare undici proxy', setup: () => startNodeProxy('bare-proxy', 'bare-proxy.mjs') },
  { id: '3b', key: 'fastify', title: '@fastify/http-proxy', setup: () => startNodeProxy('fastify-proxy', 'fastify-proxy.mjs') },
  {
    id: '4',
    key: 'gatehouse-public',
    title: 'Gatehouse, public route',
    setup: async () => {
      const port = await freePort();
      const { child } = await startGatehouse('gatehouse-public', () => gatewayYaml({ port, route: '    public: true\n' }));
      const url = `http://127.0.0.1:${port}${PATH}`;
      const status = await waitUp(url, {}, child);
      if (status !== 200) throw new Error(`Gatehouse answered ${status}:\n${logTail(child)}`);
      return { url };
    },
  },
];

const REFERENCES = ['direct', 'nginx', 'bare'];

// ---------------------------------------------------------------- report

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function summarize(results) {
  const out = {};
  for (const [key, r] of Object.entries(results)) {
    if (r.skip) continue;
    const ok = r.rounds.filter((x) => x.non2xx === 0 && x.socketErrors === 0);
    const use = ok.length ? ok : r.rounds;
    out[key] = { rps: median(use.map((x) => x.rps)), p50: median(use.map((x) => x.p50)), p99: median(use.map((x) => x.p99)), clean: ok.length === r.rounds.length };
  }
  for (const m of Object.values(out)) {
    m.ratios = {};
    for (const ref of REFERENCES) {
      const b = out[ref];
      if (!b) continue;
      m.ratios[ref] = { rps: m.rps / b.rps, p50: m.p50 / b.p50, p99: m.p99 / b.p99 };
    }
  }
  return out;
}

function budget(summary) {
  const bare = summary.bare;
  const fastify = summary.fastify;
  const checks = [];
  for (const key of Object.keys(summary).filter((k) => k.startsWith('gatehouse-prod'))) {
    const s = summary[key];
    if (bare) checks.push({ scenario: key, rule: 'req/s ≥ 0.75 × bare', value: s.rps / bare.rps, pass: s.rps >= 0.75 * bare.rps });
    if (fastify) checks.push({ scenario: key, rule: 'req/s ≥ 1.3 × @fastify/http-proxy', value: s.rps / fastify.rps, pass: s.rps >= 1.3 * fastify.rps });
    if (bare) checks.push({ scenario: key, rule: 'p99 ≤ bare p99 + 2 ms', value: s.p99 - bare.p99, pass: s.p99 <= bare.p99 + 2 });
  }
  return checks;
}

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const ratio3 = (m, what) => REFERENCES.map((ref) => f2(m.ratios[ref]?.[what])).join(' ');

function printTable(results, summary) {
  const head = `${pad('scenario', 38)}${lpad('req/s', 9)}  ${pad('÷ dir  ngx  bare', 16)}${lpad('p50 ms', 8)}  ${pad('÷ dir  ngx  bare', 16)}${lpad('p99 ms', 8)}  ÷ dir  ngx  bare`;
  console.log('\n' + head);
  console.log('-'.repeat(head.length));
  for (const sc of SCENARIOS) {
    const r = results[sc.key];
    if (!r) continue;
    const label = `${sc.id}. ${sc.title}`;
    if (r.skip) {
      console.log(`${pad(label, 38)}skipped: ${r.skip}`);
      continue;
    }
    const m = summary[sc.key];
    const flag = m.clean ? '' : '  (errors: see JSON)';
    console.log(
      `${pad(label, 38)}${lpad(Math.round(m.rps), 9)}  ${pad(ratio3(m, 'rps'), 16)}${lpad(m.p50.toFixed(2), 8)}  ${pad(ratio3(m, 'p50'), 16)}${lpad(m.p99.toFixed(2), 8)}  ${ratio3(m, 'p99')}${flag}`,
    );
  }
}

// ---------------------------------------------------------------- main

const CPUS = os.cpus().length;
const PIN = CPUS >= 2 && env.BENCH_NO_PIN !== '1';
const GW_CPU = 0;
const LOAD_CPU = 1;

async function main() {
  const limitMs = (SCENARIOS.length * (ROUNDS * (DURATION + 2) + WARMUP + 30) + 300) * 1000;
  setTimeout(() => {
    console.error(`bench: time limit of ${Math.round(limitMs / 1000)} s exceeded; stopping`);
    void stopAll().finally(() => process.exit(1));
  }, limitMs).unref();

  ensureTools();
  if (env.BENCH_NO_BUILD !== '1') {
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('build failed');
  }
  if (!existsSync(GATEHOUSE_BIN)) throw new Error(`${GATEHOUSE_BIN} is missing: npm run build`);
  tmp = mkdtempSync(join(os.tmpdir(), 'gatehouse-bench-'));

  const meta = {
    started: new Date().toISOString(),
    node: process.version,
    wrk: version('wrk', ['-v'], /wrk (?:debian\/)?([\d.]+)/),
    nginx: version(which('nginx'), ['-v'], /nginx\/([\d.]+)/),
    git: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim(),
    cpus: CPUS,
    cpuModel: os.cpus()[0]?.model,
    loadavgStart: os.loadavg(),
    pinning: PIN ? { gateway: GW_CPU, loadAndUpstream: LOAD_CPU } : null,
    settings: { duration: DURATION, rounds: ROUNDS, warmup: WARMUP, connections: CONNECTIONS, wrkThreads: 1, path: PATH, gatehouseLogLevel: LOG_LEVEL },
  };

  console.log('Gatehouse benchmark (issue 6)');
  if (PIN) console.log(`  pinning: proxy under test on core ${GW_CPU} (taskset -c ${GW_CPU}); wrk and the upstream on core ${LOAD_CPU} (taskset -c ${LOAD_CPU})`);
  else console.log(`  pinning: OFF (${CPUS} core${CPUS === 1 ? '' : 's'}${env.BENCH_NO_PIN === '1' ? ', BENCH_NO_PIN=1' : ''}): figures mix the gateway with the load generator`);
  console.log(`  wrk ${meta.wrk}: 1 thread, ${CONNECTIONS} connections, ${DURATION} s per measurement, ${ROUNDS} round(s) alternating, ${WARMUP} s warm-up; GET ${PATH}, loopback only`);
  console.log(`  node ${meta.node}, nginx ${meta.nginx}, ${meta.cpuModel} × ${CPUS}; load average ${meta.loadavgStart.map((x) => x.toFixed(2)).join(' ')}`);
  if (meta.loadavgStart[0] > 0.5) console.log('  note: the machine is not idle (load average above); expect noisy figures');

  await startUpstream();
  const results = {};
  const targets = [];
  for (const sc of SCENARIOS) {
    if (ONLY && !ONLY.has(sc.id) && !ONLY.has(sc.key)) continue;
    let t;
    try {
      t = await sc.setup();
    } catch (err) {
      if (sc.optional) t = { skip: err.message.split('\n')[0] };
      else throw new Error(`scenario ${sc.id} (${sc.title}): ${err.message}`);
    }
    if (t.skip) {
      results[sc.key] = { id: sc.id, title: sc.title, skip: t.skip };
      console.log(`  ${sc.id}. ${sc.title}: skipped: ${t.skip}`);
      continue;
    }
    results[sc.key] = { id: sc.id, title: sc.title, url: t.url, rounds: [] };
    targets.push([sc, t]);
  }

  if (WARMUP > 0) {
    process.stdout.write('  warming up:');
    for (const [sc, t] of targets) {
      await wrk(t, WARMUP);
      process.stdout.write(` ${sc.id}`);
    }
    process.stdout.write('\n');
  }
  for (let round = 1; round <= ROUNDS; round++) {
    process.stdout.write(`  round ${round}/${ROUNDS}:`);
    for (const [sc, t] of targets) {
      const r = await wrk(t, DURATION);
      results[sc.key].rounds.push(r);
      process.stdout.write(` ${sc.id}=${Math.round(r.rps)}${r.non2xx || r.socketErrors ? `(!${r.non2xx} non-2xx, ${r.socketErrors} socket errors)` : ''}`);
    }
    process.stdout.write('\n');
  }

  meta.loadavgEnd = os.loadavg();
  meta.finished = new Date().toISOString();
  const summary = summarize(results);
  printTable(results, summary);
  console.log(`ratios: scenario ÷ (1) direct, (2) nginx, (3a) bare proxy; medians over ${ROUNDS} round(s); load average at the end ${meta.loadavgEnd.map((x) => x.toFixed(2)).join(' ')}`);
  const checks = budget(summary);
  if (checks.length) {
    console.log('\nbudget (issue 6), production setup:');
    for (const c of checks) console.log(`  ${c.pass ? 'PASS' : 'FAIL'}  ${pad(c.scenario, 22)} ${pad(c.rule, 36)} ${c.rule.startsWith('p99') ? `${c.value >= 0 ? '+' : ''}${c.value.toFixed(2)} ms` : `${c.value.toFixed(2)}×`}`);
  }

  const dir = join(BENCH, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${meta.started.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ meta, results, summary, budget: checks }, null, 2) + '\n');
  console.log(`\nraw figures: ${file}`);
}

try {
  await main();
  await stopAll();
} catch (err) {
  console.error(`bench: ${err.stack ?? err}`);
  await stopAll();
  process.exitCode = 1;
}
