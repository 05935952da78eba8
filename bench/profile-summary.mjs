#!/usr/bin/env node
// Summarizes V8 .cpuprofile files (from BENCH_CPU_PROF=1 npm run bench):
// self time by function and by module/package, top N.
// Usage: node bench/profile-summary.mjs [FILE_OR_DIR…] (default bench/results/profiles)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const TOP = Number(process.env.TOP ?? 25);

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

function summarize(file) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  // timeDeltas[i] is the time before sample i.
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i];
    self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
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
  const busy = sampled * (1 - idle);
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

const args = process.argv.slice(2);
for (const f of (args.length ? args : [join(ROOT, 'bench', 'results', 'profiles')]).flatMap(files)) summarize(f);
