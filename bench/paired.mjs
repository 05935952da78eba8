#!/usr/bin/env node
// `npm run bench:paired -- OLD_REV [NEW_REV]`: is a change to the request path
// faster? Builds both git revisions (NEW_REV defaults to the working tree),
// (`.` for the working tree) runs both gateways AT THE SAME TIME on the same core, each driven by its
// own wrk, and compares CPU time per request round by round.
//
// On a shared or virtual machine the figures of `npm run bench` move by
// ±20% from minute to minute (the bare proxy alone went from 55 to 105 µs
// per request within one run): alternating rounds cannot tell a 5% change
// from noise. Here both sides suffer the same noise at the same moment, so
// their ratio moves far less; its median over rounds is the figure to trust
// for small changes.
//
// Environment: BENCH_SCENARIO (default sa) for both sides, or
// BENCH_SCENARIO_NEW for the new side only — with OLD_REV = NEW_REV that
// compares two setups of one revision (what does the audit file cost?).
// Scenarios: public, sa (service-account token, role rule), jwt (ES256 JWT
// from a local JWKS, scope rule), each with the
// audit log to a file and the log at info on stdout to a file; suffixes:
// `-stdout` audit to stdout, `-null` stdout to /dev/null, `-warn` log level
// warn, `-admin` an admin listener (/metrics) — e.g. sa-stdout-null; or
// `bare` / `fastify`, the reference proxies of `npm run bench`, so that
// `BENCH_SCENARIO=bare BENCH_SCENARIO_NEW=sa-admin … paired.mjs . .` gives the
// production setup's cost against the bare proxy with the noise paired out.
// Node flags: each side's own production flags (src/cli/node-flags.ts), as in
// `npm run bench`; BENCH_NODE_OPTIONS_OLD / BENCH_NODE_OPTIONS_NEW replace them for one side.
// BENCH_ROUNDS (8), BENCH_DURATION (3 s), BENCH_CONNECTIONS (50 per side).
//
// BENCH_MEASURE=instructions counts instead of timing (bench/README.md): each side runs alone
// under valgrind's callgrind (`node --single-threaded`, so that V8's
// compiler and GC threads do not make the count depend on scheduling), takes
// BENCH_WARMUP_REQUESTS (5000) requests, then BENCH_REQUESTS (6000) counted
// ones from BENCH_CONNECTIONS (10) keep-alive connections, one process per
// side and round (BENCH_ROUNDS, 3). It prints user-space instructions per
// request (the kernel's share is not counted) and, for the last round, the
// functions whose count changed most, JIT-compiled JavaScript named through
// `--perf-basic-prof`. Totals move by ±2-4% from run to run (timer-driven
// work scales with the slowed-down wall clock); a function's own count
// moves far less, so it shows a 1% change that timing cannot.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { cpuMicros, ensureTools, freePort, GW_CPU, headerObject, LOAD_CPU, nodeFlagsFor, pinned, setWorkDir, sleep, startChild, startJwks, stopAll, waitUp, which, wrk } from './lib.mjs';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const env = process.env;
const SCENARIO = env.BENCH_SCENARIO ?? 'sa';
const SCENARIO_NEW = env.BENCH_SCENARIO_NEW ?? SCENARIO;
/** The scenario (or both) for the run's heading. */
const SCENARIO_LABEL = SCENARIO === SCENARIO_NEW ? SCENARIO : `${SCENARIO} vs ${SCENARIO_NEW}`;
/** The reference proxies of `npm run bench`, as a side: `bare` (3a) and `fastify` (3b). */
const PEERS = { bare: 'bare-proxy.mjs', fastify: 'fastify-proxy.mjs' };

/** `sa-stdout-null` → { auth: 'sa', stdout: true, null: true }. */
function parseScenario(s) {
  if (s in PEERS) return { name: s, peer: PEERS[s] };
  const [auth, ...opts] = s.split('-');
  const known = ['stdout', 'null', 'warn', 'admin'];
  if (!['public', 'sa', 'jwt'].includes(auth) || opts.some((o) => !known.includes(o))) return undefined;
  return { name: s, auth, ...Object.fromEntries(opts.map((o) => [o, true])) };
}
const COUNTING = env.BENCH_MEASURE === 'instructions';
const ROUNDS = Number(env.BENCH_ROUNDS ?? (COUNTING ? 3 : 8));
const DURATION = Number(env.BENCH_DURATION ?? 3);
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? (COUNTING ? 10 : 50));
const WARMUP_REQUESTS = Number(env.BENCH_WARMUP_REQUESTS ?? 5000);
const REQUESTS = Number(env.BENCH_REQUESTS ?? 6000);
const [oldRev, newRev] = process.argv.slice(2);
if (!oldRev || !parseScenario(SCENARIO) || !parseScenario(SCENARIO_NEW)) {
  console.error('usage: npm run bench:paired -- OLD_REV [NEW_REV]   (BENCH_SCENARIO=public|sa|jwt[-stdout][-null][-warn][-admin], BENCH_SCENARIO_NEW=…)');
  process.exit(2);
}

const tmp = mkdtempSync(join(os.tmpdir(), 'gatehouse-paired-'));
setWorkDir(tmp);

function git(args, cwd = ROOT) {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Builds a revision into its own directory (a detached worktree); undefined: the working tree as it is. */
function build(rev, name) {
  if (rev === '.') rev = undefined;
  let dir = ROOT;
  if (rev) {
    dir = join(tmp, name);
    git(['worktree', 'add', '--detach', dir, rev]);
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  }
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: dir, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${rev ?? 'working tree'}: build failed`);
  return { dir, label: rev ? git(['rev-parse', '--short', rev]) : 'working tree' };
}

const upstreamPort = await freePort();
const upstreamOrigin = `http://127.0.0.1:${upstreamPort}`;

/**
 * The Node flags of a side. By default the production flags of the side's
 * own revision (src/cli/node-flags.ts, none before it existed), for a
 * reference proxy as for a gateway, as in `npm run bench`: a gateway
 * measured without them is not what ships (after each quiet spell V8 would
 * shrink its young generation). BENCH_NODE_OPTIONS_OLD / _NEW replace them
 * for one side (e.g. `--min-semi-space-size=16 --max-semi-space-size=32`,
 * or --cpu-prof, which NODE_OPTIONS refuses; empty for none).
 */
async function sideFlags(name, dir) {
  const variable = `BENCH_NODE_OPTIONS_${name.toUpperCase()}`;
  return { flags: await nodeFlagsFor(env[variable], dir), source: env[variable] !== undefined ? variable : 'production flags' };
}

/** The command that runs a side's node: under callgrind when counting (its counts go to `<tmp>/<name>.cg`), pinned. */
function launch(name, flags, nodeArgs) {
  if (!COUNTING) return pinned(GW_CPU, process.execPath, [...flags, ...nodeArgs]);
  const vg = ['--tool=callgrind', `--callgrind-out-file=${join(tmp, `${name}.cg`)}`, '--compress-strings=no', '--compress-pos=no'];
  return pinned(GW_CPU, 'valgrind', [...vg, process.execPath, '--single-threaded', '--perf-basic-prof', ...flags, ...nodeArgs]);
}

async function startSide(side, name, scenario) {
  const sc = parseScenario(scenario);
  const port = await freePort();
  if (sc.peer) {
    const [cmd, args] = launch(name, side.peerNode.flags, [join(ROOT, 'bench', sc.peer), String(port), upstreamOrigin]);
    const child = startChild(name, cmd, args);
    const url = `http://127.0.0.1:${port}/bench/hello`;
    const status = await waitUp(url, {}, child, COUNTING ? 120_000 : undefined);
    if (status !== 200) throw new Error(`${scenario} answered ${status}`);
    return { ...side, label: scenario, target: { url, headers: [] }, pid: child.pid, child, us: [], rps: [] };
  }
  const admin = sc.admin ? `  admin: 127.0.0.1:${await freePort()}\n` : '';
  const dir = join(tmp, `${name}-run`);
  // A fresh directory per start: a counting round starts each side anew, and its store must not hold the last round's account.
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const jwt = sc.auth === 'jwt' ? await startJwks() : undefined;
  const route =
    sc.auth === 'sa' ? '    auth: [service_account]\n    allow:\n      - roles: [viewer]\n' : jwt ? '    auth: [local]\n    allow:\n      - scopes: [bench.read]\n' : '    public: true\n';
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `server:\n  listen: 127.0.0.1:${port}\n${admin}store: file:./accounts.json\nroles:\n  viewer: {}\n${jwt?.issuers ?? ''}upstreams:\n  up:\n    url: ${upstreamOrigin}\n    timeout: 10s\nroutes:\n  - name: bench\n    match: { path: /bench/** }\n    upstream: up\n${route}audit:\n  file: ${sc.stdout ? '"-"' : './audit.log'}\n`,
  );
  const bin = join(side.dir, 'dist', 'cli', 'bin.js');
  const headers = [];
  if (sc.auth === 'sa') {
    const r = spawnSync(process.execPath, [bin, 'accounts', 'create', 'bench', '--role', 'viewer', '-c', file], { cwd: dir, encoding: 'utf8' });
    const token = r.stdout.trim().split('\n').at(-1);
    if (r.status !== 0 || !token) throw new Error(`${side.label}: accounts create failed: ${r.stderr}`);
    headers.push(`Authorization: Bearer ${token}`);
  }
  if (jwt) headers.push(`Authorization: Bearer ${jwt.token}`);
  const [cmd, args] = launch(name, side.node.flags, [bin, 'start', '-c', file]);
  const child = startChild(name, cmd, args, { cwd: dir, stdoutToNull: sc.null, extraEnv: { NODE_ENV: 'production', GATEHOUSE_LOG_LEVEL: sc.warn ? 'warn' : 'info' } });
  const url = `http://127.0.0.1:${port}/bench/hello`;
  const probe = headerObject(headers);
  let status = await waitUp(url, probe, child, COUNTING ? 120_000 : undefined);
  // An issuer whose JWKS is not fetched yet answers 503 for a moment.
  for (let i = 0; status === 503 && i < 50; i++) status = await sleep(100).then(() => waitUp(url, probe, child));
  if (status !== 200) throw new Error(`${side.label} answered ${status}`);
  return { ...side, label: SCENARIO === SCENARIO_NEW ? side.label : `${side.label} ${scenario}`, target: { url, headers }, pid: child.pid, child, us: [], rps: [] };
}

/** Exactly `count` GET requests to `target` over `connections` keep-alive connections; any answer but 200 is an error. */
async function requests(target, count, connections) {
  const url = new URL(target.url);
  const headers = headerObject(target.headers);
  const pool = new Pool(url.origin, { connections, pipelining: 1 });
  let left = count;
  const one = async () => {
    while (left-- > 0) {
      const r = await pool.request({ path: url.pathname, method: 'GET', headers });
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(`${target.url} answered ${r.statusCode}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: connections }, one));
  } finally {
    await pool.close();
  }
}

/** V8's ways from running code into its compilers, Runtime_Compile* and Runtime_InstallBaselineCode, whatever the version calls them (with --single-threaded, all compiling happens inside these calls). */
const COMPILE_ENTRY = /^v8::internal::Runtime_(Compile\w*|InstallBaselineCode)\(/;

/** Functions of V8's compilers: the ledger leaves them out (compiling is counted apart, above). */
const COMPILER_ROW = /^v8::internal::(compiler|maglev|baseline)::/;

/**
 * Self instructions by function in a callgrind dump (its text), JIT code
 * named from the process's perf map; and the instructions spent compiling
 * (the inclusive cost of the calls into COMPILE_ENTRY).
 */
function functionCounts(text, pid) {
  const map = [];
  try {
    for (const line of readFileSync(`/tmp/perf-${pid}.map`, 'utf8').split('\n')) {
      const [a, n, ...name] = line.split(' ');
      if (name.length) map.push([parseInt(a, 16), parseInt(n, 16), name.join(' ')]);
    }
  } catch {
    // No map: JIT code keeps its address.
  }
  map.sort((x, y) => x[0] - y[0]);
  const jitName = (addr) => {
    let lo = 0;
    let hi = map.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (map[mid][0] <= addr) lo = mid + 1;
      else hi = mid - 1;
    }
    const m = map[hi];
    return m && addr < m[0] + m[1] ? m[2] : undefined;
  };
  const counts = new Map();
  let fn;
  let callee = '';
  let compiling = 0;
  // After a `calls=` line comes the inclusive cost of that call: not the caller's own.
  let callCost = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('cfn=')) {
      callee = line.slice(4);
    } else if (line.startsWith('fn=')) {
      const raw = line.slice(3);
      const hex = /^0x([0-9a-f]+)$/.exec(raw);
      // One name for both builds: no build directory, no line (a change moves them), unnamed JIT code together.
      fn = hex ? (jitName(parseInt(hex[1], 16))?.replace(/(?:file:\/\/)?\/\S*?\/(dist|node_modules)\//, '$1/').replace(/:\d+:\d+$/, '') ?? '(JIT code without a name)') : raw;
    } else if (line.startsWith('calls=')) {
      callCost = true;
    } else if (fn !== undefined && /^[+-]?\d/.test(line)) {
      const cost = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (!callCost) counts.set(fn, (counts.get(fn) ?? 0) + cost);
      // JavaScript enters V8's compilers only through these runtime functions: their calls hold all of its compiling.
      else if (COMPILE_ENTRY.test(callee)) compiling += cost;
      callCost = false;
    }
  }
  return { counts, compiling };
}

/** One side alone under callgrind: warm-up, counters zeroed, the counted requests, a dump. */
async function countSide(side, name, scenario) {
  const s = await startSide(side, name, scenario);
  try {
    await requests(s.target, WARMUP_REQUESTS, CONNECTIONS);
    await sleep(500);
    spawnSync('callgrind_control', ['--zero', String(s.pid)], { stdio: 'ignore' });
    await requests(s.target, REQUESTS, CONNECTIONS);
    await sleep(300);
    const dumped = spawnSync('callgrind_control', ['--dump', String(s.pid)], { encoding: 'utf8' });
    if (dumped.status !== 0) throw new Error(`callgrind_control --dump: ${dumped.stderr}`);
    const file = join(tmp, `${name}.cg.1`);
    for (let i = 0; i < 100 && !existsSync(file); i++) await sleep(100);
    await sleep(500);
    const text = readFileSync(file, 'utf8');
    const total = Number(/^(?:summary|totals): (\d+)/m.exec(text)?.[1]);
    const { counts, compiling } = functionCounts(text, s.pid);
    return { perRequest: (total - compiling) / REQUESTS, compiling: compiling / REQUESTS, functions: counts };
  } finally {
    s.child.kill('SIGTERM');
    for (let i = 0; i < 100 && !s.child.exited; i++) await sleep(100);
    if (!s.child.exited) s.child.kill('SIGKILL');
    for (const f of readdirSync(tmp)) if (f.startsWith(`${name}.cg`)) rmSync(join(tmp, f));
    rmSync(`/tmp/perf-${s.pid}.map`, { force: true });
  }
}

/** Both gateways at once on one core, each driven by its own wrk: CPU time per request, round by round. */
async function timeSides(a, b) {
  const sides = [await startSide(a, 'old', SCENARIO), await startSide(b, 'new', SCENARIO_NEW)];
  console.log(`paired: ${a.label} vs ${b.label}, scenario ${SCENARIO_LABEL}; both gateways on core ${GW_CPU} at once, wrk + upstream on core ${LOAD_CPU}; ${ROUNDS} × ${DURATION} s`);
  await Promise.all(sides.map((s) => wrk(s.target, 2, CONNECTIONS)));
  for (let r = 1; r <= ROUNDS; r++) {
    const before = sides.map((s) => cpuMicros([s.pid]));
    const out = await Promise.all(sides.map((s) => wrk(s.target, DURATION, CONNECTIONS)));
    sides.forEach((s, i) => {
      if (!out[i].requests || out[i].non2xx || out[i].socketErrors) throw new Error(`${s.label}: ${out[i].requests} requests, ${out[i].non2xx} non-2xx answers, ${out[i].socketErrors} socket errors`);
      s.us.push((cpuMicros([s.pid]) - before[i]) / out[i].requests);
      s.rps.push(out[i].rps);
    });
    console.log(`  round ${r}: ${sides.map((s) => `${s.label} ${s.us.at(-1).toFixed(1)} µs/req`).join(', ')}  ratio ${(sides[1].us.at(-1) / sides[0].us.at(-1)).toFixed(3)}`);
  }
  const ratios = sides[1].us.map((u, i) => u / sides[0].us[i]);
  for (const s of sides) console.log(`${s.label.padEnd(14)} CPU µs/req median ${median(s.us).toFixed(1)}, req/s median ${median(s.rps).toFixed(0)}`);
  console.log(`new ÷ old CPU per request: median ${median(ratios).toFixed(3)} (rounds ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})`);
}

/** BENCH_MEASURE=instructions: both sides counted round by round, one at a time, in alternating order. */
async function countInstructions(a, b) {
  if (!which('valgrind')) throw new Error('BENCH_MEASURE=instructions needs valgrind (apt-get install -y valgrind)');
  console.log(`instructions: ${a.label} vs ${b.label}, scenario ${SCENARIO_LABEL}; each alone under callgrind (node --single-threaded), ${WARMUP_REQUESTS} requests of warm-up, ${REQUESTS} counted over ${CONNECTIONS} connections; ${ROUNDS} round(s)`);
  const per = { old: [], new: [] };
  const last = {};
  for (let r = 1; r <= ROUNDS; r++) {
    const order = r % 2 ? [['old', a, SCENARIO], ['new', b, SCENARIO_NEW]] : [['new', b, SCENARIO_NEW], ['old', a, SCENARIO]];
    for (const [name, side, scenario] of order) {
      last[name] = await countSide(side, name, scenario);
      per[name].push(last[name].perRequest);
    }
    const compiled = (name) => `(+${last[name].compiling.toFixed(0)} compiling)`;
    console.log(`  round ${r}: ${a.label} ${per.old.at(-1).toFixed(0)} ${compiled('old')}, ${b.label} ${per.new.at(-1).toFixed(0)} ${compiled('new')} instructions/request  ratio ${(per.new.at(-1) / per.old.at(-1)).toFixed(3)}`);
  }
  const ratios = per.new.map((n, i) => n / per.old[i]);
  console.log(`new ÷ old instructions per request: median ${median(ratios).toFixed(3)} (rounds ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}); medians ${median(per.old).toFixed(0)} and ${median(per.new).toFixed(0)}`);
  const names = new Set([...last.old.functions.keys(), ...last.new.functions.keys()]);
  const diff = [...names]
    .filter((n) => !COMPILER_ROW.test(n))
    .map((n) => [n, ((last.new.functions.get(n) ?? 0) - (last.old.functions.get(n) ?? 0)) / REQUESTS])
    .sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
  console.log(`last round, functions whose own instructions per request changed most (new − old; ${a.label} → ${b.label}; V8's compilers left out):`);
  for (const [n, d] of diff.slice(0, Number(env.BENCH_TOP ?? 25))) {
    const o = (last.old.functions.get(n) ?? 0) / REQUESTS;
    console.log(`  ${(d >= 0 ? '+' : '') + d.toFixed(0).padStart(7)}  ${o.toFixed(0).padStart(7)} → ${(o + d).toFixed(0).padStart(7)}  ${n.slice(0, 110)}`);
  }
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

try {
  ensureTools();
  const a = build(oldRev, 'old');
  const b = build(newRev, 'new');
  // A reference proxy runs with the working tree's flags, as in `npm run bench`.
  for (const [side, name, scenario] of [[a, 'old', SCENARIO], [b, 'new', SCENARIO_NEW]]) {
    side.node = await sideFlags(name, side.dir);
    side.peerNode = await sideFlags(name, ROOT);
    const { flags, source } = parseScenario(scenario).peer ? side.peerNode : side.node;
    console.log(`${name} side (${side.label}, ${scenario}): node ${flags.join(' ') || '(no flags)'} (${source})`);
  }
  const [ucmd, uargs] = pinned(LOAD_CPU, process.execPath, [join(ROOT, 'bench', 'upstream.mjs'), String(upstreamPort)]);
  await waitUp(`${upstreamOrigin}/`, {}, startChild('upstream', ucmd, uargs));
  await (COUNTING ? countInstructions(a, b) : timeSides(a, b));
} finally {
  await stopAll();
  for (const name of ['old', 'new']) if (existsSync(join(tmp, name))) spawnSync('git', ['worktree', 'remove', '--force', join(tmp, name)], { cwd: ROOT });
}
