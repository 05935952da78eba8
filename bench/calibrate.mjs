#!/usr/bin/env node
// `npm run bench:calibrate`: what does a microsecond of work per request cost
// here? Runs the bare reference proxy of `npm run bench` (3a) with
// BARE_SPIN_US = 0, 5, 10, 15, 20, 25 (pure CPU, no allocation, no I/O, before
// each request), alternating, pinned as `npm run bench` pins, and prints each
// one's requests/s and CPU per request against the unspun proxy.
//
// It reads the budget of issue 6 in microseconds: the largest spin that still
// reaches 0.75 × the bare proxy's throughput is all the work a gateway may
// add per request (auth, rules, audit, metrics, log line, header rules) on
// this machine. A spin costs more CPU than itself: at a lower request rate the
// same syscalls cost more per request (the load generator and the upstream
// sleep and are woken more often), which the CPU column shows.
//
// Environment: BENCH_ROUNDS (3), BENCH_DURATION (5 s), BENCH_CONNECTIONS (50),
// CALIBRATE_SPINS (comma-separated µs, default 0,5,10,15,20,25).
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMicros, ensureTools, freePort, GW_CPU, LOAD_CPU, pinned, setWorkDir, startChild, stopAll, waitUp, wrk } from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
const DURATION = Number(env.BENCH_DURATION ?? 5);
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 50);
const SPINS = (env.CALIBRATE_SPINS ?? '0,5,10,15,20,25').split(',').map(Number);
if (!SPINS.includes(0)) SPINS.unshift(0);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const limit = setTimeout(() => {
  console.error('bench:calibrate: time limit reached, stopping');
  void stopAll().finally(() => process.exit(1));
}, (ROUNDS * SPINS.length * (DURATION + 6) + 60) * 1000);
limit.unref();

ensureTools();
setWorkDir(mkdtempSync(join(os.tmpdir(), 'gatehouse-calibrate-')));
console.log(`bench:calibrate: the bare proxy on core ${GW_CPU} with BARE_SPIN_US = ${SPINS.join(', ')}; wrk and the upstream on core ${LOAD_CPU}`);
console.log(`  wrk: ${CONNECTIONS} connections, ${DURATION} s per measurement, ${ROUNDS} round(s) alternating; loopback only`);

const upPort = await freePort();
const origin = `http://127.0.0.1:${upPort}`;
const [uc, ua] = pinned(LOAD_CPU, process.execPath, [join(HERE, 'upstream.mjs'), String(upPort)]);
await waitUp(`${origin}/`, {}, startChild('upstream', uc, ua));

const results = new Map(SPINS.map((s) => [s, { rps: [], cpu: [] }]));
for (let round = 1; round <= ROUNDS; round++) {
  const line = [];
  for (const spin of SPINS) {
    const port = await freePort();
    const [c, a] = pinned(GW_CPU, process.execPath, [join(HERE, 'bare-proxy.mjs'), String(port), origin]);
    const child = startChild(`bare-spin-${spin}`, c, a, { extraEnv: { BARE_SPIN_US: String(spin) } });
    const target = { url: `http://127.0.0.1:${port}/bench/hello`, headers: [] };
    await waitUp(target.url, {}, child);
    await wrk(target, 2, CONNECTIONS);
    const before = cpuMicros([child.pid]);
    const w = await wrk(target, DURATION, CONNECTIONS);
    const cpu = (cpuMicros([child.pid]) - before) / w.requests;
    results.get(spin).rps.push(w.rps);
    results.get(spin).cpu.push(cpu);
    line.push(`${spin}=${Math.round(w.rps)}`);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  console.log(`  round ${round}/${ROUNDS}: ${line.join(' ')}`);
}
await stopAll();

const base = results.get(0);
const baseRps = median(base.rps);
const baseCpu = median(base.cpu);
console.log('\nspin µs   req/s   ÷ unspun   CPU µs/req   CPU over unspun');
let allowed;
for (const spin of SPINS) {
  const r = results.get(spin);
  const rps = median(r.rps);
  const cpu = median(r.cpu);
  if (rps / baseRps >= 0.75) allowed = spin;
  console.log(`${String(spin).padStart(7)} ${String(Math.round(rps)).padStart(7)} ${(rps / baseRps).toFixed(2).padStart(10)} ${cpu.toFixed(1).padStart(12)} ${('+' + (cpu - baseCpu).toFixed(1)).padStart(17)}`);
}
console.log(`\nthe 0.75 × bare budget (issue 6) allows about ${allowed ?? 0} µs of added work per request here (the largest spin at ≥ 0.75 × the unspun proxy)`);
process.exit(0);
