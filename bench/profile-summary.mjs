#!/usr/bin/env node
// Summarizes V8 .cpuprofile files (from BENCH_CPU_PROF=1 npm run bench):
// self time by function and by module/package, top N.
// Usage: node bench/profile-summary.mjs [FILE_OR_DIR…] (default bench/results/profiles)
//
// --diff A B: where B spends its CPU per request over A, function by function
// and package by package, in µs per request: each profile's share of busy
// time times its scenario's CPU µs/req from the newest bench/results/*.json.
// A and B are scenario keys (bare, fastify, gatehouse-prod-sa, …: directories
// under bench/results/profiles/) or PATH=µs. E.g., after
// `BENCH_CPU_PROF=1 BENCH_ONLY=3a,7a npm run bench`:
//   node bench/profile-summary.mjs --diff bare gatehouse-prod-sa
// The first SKIP_MS (2000) ms of each profile are left out: start-up.
// A profile samples wall time: a native call shows the time the process was
// off the core inside it, too (a write that wakes another thread on the
// same core). Read the small rows as noise: they move by ±0.2 µs from run
// to run.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const TOP = Number(process.env.TOP ?? 25);
/** --diff leaves out the first SKIP_MS of each profile: the process starting (module loading), not serving. */
const SKIP_MS = Number(process.env.SKIP_MS ?? 2000);

function files(p) {
  if (statSync(p).isDirectory()) return readdirSync(p).flatMap((f) => files(join(p, f)));
  return p.endsWith('.cpuprofile') ? [p] : [];
}

function where(url) {
  if (!url) return '(native/V8)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = path.slice(nm + 13).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (path.startsWith('node:')) return path;
  return relative(ROOT, path);
}

/** Self time (µs sampled) by profile node, by function and by module/package; without the first `skipMs` of the profile. */
function selfTimes(file, skipMs = 0) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  // timeDeltas[i] is the time before sample i.
  let at = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0;
    at += dt;
    if (at < skipMs * 1000) continue;
    const id = prof.samples[i];
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const sampled = [...self.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map();
  const byMod = new Map();
  for (const [id, us] of self) {
    const { callFrame: cf } = byId.get(id);
    const fn = `${cf.functionName || '(anonymous)'}  ${where(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    const mod = cf.url ? where(cf.url) : cf.functionName.startsWith('(') ? cf.functionName : '(native/V8)';
    byMod.set(mod, (byMod.get(mod) ?? 0) + us);
  }
  const idle = (byMod.get('(idle)') ?? 0) / sampled;
  return { prof, byId, self, sampled, idle, busy: sampled * (1 - idle), byFn, byMod };
}

function summarize(file) {
  const { prof, byId, self, sampled, idle, busy, byFn, byMod } = selfTimes(file);
  const pct = (us) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  console.log(`\n${relative(ROOT, file)}: ${(sampled / 1e6).toFixed(1)} s sampled, ${(100 * idle).toFixed(1)}% idle; shares below are of busy time`);
  console.log('  self time by module/package:');
  for (const [k, v] of [...byMod].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${pct(v)}  ${k}`);
  // Inclusive time of Gatehouse's own functions (dist/): self time of the node and everything it calls.
  const total = new Map();
  const inclusive = (node) => {
    let t = self.get(node.id) ?? 0;
    for (const c of node.children ?? []) t += inclusive(byId.get(c));
    const cf = node.callFrame;
    if (cf.url.includes('/dist/')) {
      const fn = `${cf.functionName || '(anonymous)'}  ${where(cf.url)}:${cf.lineNumber + 1}`;
      // A recursive or re-entered frame is counted once per call path, which is what a profile tree shows.
      total.set(fn, (total.get(fn) ?? 0) + t);
    }
    return t;
  };
  inclusive(prof.nodes[0]);
  console.log('  inclusive time of Gatehouse functions (dist/):');
  for (const [k, v] of [...total].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${pct(v)}  ${k}`);
  console.log('  self time by function:');
  for (const [k, v] of [...byFn].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${pct(v)}  ${k}`);
}

/** CPU µs per request of a scenario in the newest bench/results/*.json. */
function cpuPerRequest(key) {
  const dir = join(ROOT, 'bench', 'results');
  const newest = readdirSync(dir).filter((f) => /^bench-.*\.json$/.test(f)).sort().at(-1);
  const us = newest && JSON.parse(readFileSync(join(dir, newest), 'utf8')).summary?.[key]?.cpuUsPerRequest;
  if (!Number.isFinite(us)) throw new Error(`no CPU µs/req for "${key}" in ${newest ?? 'bench/results/'}: give PATH=µs`);
  return us;
}

/** `bare` or `PATH=µs` → the profile files and the CPU µs/req to scale them to. */
function side(arg) {
  const eq = arg.lastIndexOf('=');
  const [name, us] = eq > 0 ? [arg.slice(0, eq), Number(arg.slice(eq + 1))] : [arg, undefined];
  const path = existsSync(name) ? name : join(ROOT, 'bench', 'results', 'profiles', name);
  const list = files(path);
  if (list.length === 0) throw new Error(`no .cpuprofile in ${path}`);
  return { label: name, list, us: us ?? cpuPerRequest(name.replace(/\/+$/, '').split('/').at(-1)) };
}

/** Self time in µs per request by function and by package, summed over a side's profiles. */
function perRequest({ list, us }) {
  const fn = new Map();
  const mod = new Map();
  let busy = 0;
  const parts = list.map((f) => selfTimes(f, SKIP_MS));
  for (const p of parts) busy += p.busy;
  const add = (to, from) => {
    for (const [k, v] of from) if (!k.startsWith('(idle)')) to.set(k, (to.get(k) ?? 0) + (v / busy) * us);
  };
  for (const p of parts) {
    add(fn, p.byFn);
    add(mod, p.byMod);
  }
  return { fn, mod };
}

function diff(a, b) {
  const A = perRequest(a);
  const B = perRequest(b);
  console.log(`B = ${b.label} (${b.us.toFixed(1)} CPU µs/req) over A = ${a.label} (${a.us.toFixed(1)}): self time, µs per request`);
  for (const [title, x, y] of [
    ['by module/package', A.mod, B.mod],
    ['by function', A.fn, B.fn],
  ]) {
    console.log(`  ${title}:\n         A        B    B - A`);
    const rows = [...new Set([...x.keys(), ...y.keys()])].map((k) => [k, x.get(k) ?? 0, y.get(k) ?? 0]);
    rows.sort((r, q) => Math.abs(q[2] - q[1]) - Math.abs(r[2] - r[1]));
    for (const [k, u, v] of rows.slice(0, TOP)) console.log(`  ${u.toFixed(2).padStart(8)} ${v.toFixed(2).padStart(8)} ${(v - u >= 0 ? '+' : '') + (v - u).toFixed(2).padStart(7)}  ${k}`);
  }
}

const args = process.argv.slice(2);
if (args[0] === '--diff') {
  if (args.length !== 3) {
    console.error('usage: node bench/profile-summary.mjs --diff A B   (scenario keys under bench/results/profiles/, or PATH=µs)');
    process.exit(2);
  }
  diff(side(args[1]), side(args[2]));
} else {
  for (const f of (args.length ? args : [join(ROOT, 'bench', 'results', 'profiles')]).flatMap(files)) summarize(f);
}
