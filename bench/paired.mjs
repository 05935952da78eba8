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
// BENCH_NODE_OPTIONS_OLD / BENCH_NODE_OPTIONS_NEW: Node flags for one side.
// BENCH_ROUNDS (8), BENCH_DURATION (3 s), BENCH_CONNECTIONS (50 per side).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMicros, ensureTools, freePort, GW_CPU, LOAD_CPU, pinned, setWorkDir, sleep, startChild, startJwks, stopAll, waitUp, wrk } from './lib.mjs';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const env = process.env;
const SCENARIO = env.BENCH_SCENARIO ?? 'sa';
const SCENARIO_NEW = env.BENCH_SCENARIO_NEW ?? SCENARIO;
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
const ROUNDS = Number(env.BENCH_ROUNDS ?? 8);
const DURATION = Number(env.BENCH_DURATION ?? 3);
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 50);
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
 * BENCH_NODE_OPTIONS_OLD / _NEW: Node flags for one side (e.g.
 * --max-semi-space-size=32, or --cpu-prof, which NODE_OPTIONS refuses):
 * given on the command line, for a reference proxy as for a gateway.
 */
function nodeFlags(name) {
  return (env[`BENCH_NODE_OPTIONS_${name.toUpperCase()}`] ?? '').split(/\s+/).filter(Boolean);
}

async function startSide(side, name, scenario) {
  const sc = parseScenario(scenario);
  const port = await freePort();
  if (sc.peer) {
    const [cmd, args] = pinned(GW_CPU, process.execPath, [...nodeFlags(name), join(ROOT, 'bench', sc.peer), String(port), upstreamOrigin]);
    const child = startChild(name, cmd, args);
    const url = `http://127.0.0.1:${port}/bench/hello`;
    const status = await waitUp(url, {}, child);
    if (status !== 200) throw new Error(`${scenario} answered ${status}`);
    return { ...side, label: scenario, target: { url, headers: [] }, pid: child.pid, us: [], rps: [] };
  }
  const admin = sc.admin ? `  admin: 127.0.0.1:${await freePort()}\n` : '';
  const dir = join(tmp, `${name}-run`);
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
  const [cmd, args] = pinned(GW_CPU, process.execPath, [...nodeFlags(name), bin, 'start', '-c', file]);
  const child = startChild(name, cmd, args, { cwd: dir, stdoutToNull: sc.null, extraEnv: { NODE_ENV: 'production', GATEHOUSE_LOG_LEVEL: sc.warn ? 'warn' : 'info' } });
  const url = `http://127.0.0.1:${port}/bench/hello`;
  const probe = Object.fromEntries(headers.map((h) => [h.slice(0, h.indexOf(':')), h.slice(h.indexOf(':') + 1).trim()]));
  let status = await waitUp(url, probe, child);
  // An issuer whose JWKS is not fetched yet answers 503 for a moment.
  for (let i = 0; status === 503 && i < 50; i++) status = await sleep(100).then(() => waitUp(url, probe, child));
  if (status !== 200) throw new Error(`${side.label} answered ${status}`);
  return { ...side, label: SCENARIO === SCENARIO_NEW ? side.label : `${side.label} ${scenario}`, target: { url, headers }, pid: child.pid, us: [], rps: [] };
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

try {
  ensureTools();
  const a = build(oldRev, 'old');
  const b = build(newRev, 'new');
  const [ucmd, uargs] = pinned(LOAD_CPU, process.execPath, [join(ROOT, 'bench', 'upstream.mjs'), String(upstreamPort)]);
  await waitUp(`${upstreamOrigin}/`, {}, startChild('upstream', ucmd, uargs));
  const sides = [await startSide(a, 'old', SCENARIO), await startSide(b, 'new', SCENARIO_NEW)];
  console.log(`paired: ${a.label} vs ${b.label}, scenario ${SCENARIO === SCENARIO_NEW ? SCENARIO : `${SCENARIO} vs ${SCENARIO_NEW}`}; both gateways on core ${GW_CPU} at once, wrk + upstream on core ${LOAD_CPU}; ${ROUNDS} × ${DURATION} s`);
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
} finally {
  await stopAll();
  for (const name of ['old', 'new']) if (existsSync(join(tmp, name))) spawnSync('git', ['worktree', 'remove', '--force', join(tmp, name)], { cwd: ROOT });
}
