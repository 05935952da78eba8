#!/usr/bin/env node
// CPU cost of the per-request parts of Gatehouse, each called in a tight
// loop on a finished request's context: CPU time per call (process.cpuUsage,
// so what else the machine runs matters less than for wall time). Run after
// `npm run build`: node bench/components.mjs
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';

const DIST = join(dirname(dirname(fileURLToPath(import.meta.url))), 'dist');
const load = async (p) => (existsSync(join(DIST, p)) ? import(pathToFileURL(join(DIST, p)).href) : undefined);
const N = Number(process.env.N ?? 200_000);

const { createLogger } = await load('log.js');
const { requestLogger } = await load('pipeline/observe.js');
const { Metrics } = await load('metrics/metrics.js');
const metricsObs = await load('metrics/observe.js');
const audit = await load('audit/record.js');

const ctx = {
  id: 'b0c5b8a1-4a8e-4f7b-9d0e-0f1f2e3d4c5b',
  time: Date.now(),
  start: process.hrtime.bigint(),
  method: 'GET',
  path: '/bench/hello',
  query: '',
  route: { name: 'bench', public: false },
  status: 200,
  decision: 'allow',
  reason: 'granted',
  principal: { kind: 'service_account', subject: 'bench', roles: ['viewer'], teams: new Map(), scopes: [], keyId: 'k1a2b3c4' },
  upstream: 'up',
  upstreamMs: 0.9,
  clientIp: '127.0.0.1',
  req: { headers: { 'user-agent': 'wrk' }, url: '/bench/hello' },
  error: undefined,
  elapsedMs: () => 1.2345,
};

// The metrics observer before issue 6: prom-client metrics through cached
// labels() children, which still hash and validate their labels per call.
function labelChildrenObserver() {
  const registry = new Registry();
  const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
  const requests = new Counter({ name: 'r_total', help: 'r', labelNames: ['route', 'method', 'code', 'decision'], registers: [registry] });
  const duration = new Histogram({ name: 'd_seconds', help: 'd', labelNames: ['route'], buckets, registers: [registry] });
  const upstreamDuration = new Histogram({ name: 'u_seconds', help: 'u', labelNames: ['upstream'], buckets, registers: [registry] });
  const cache = new Map();
  const cached = (key, make) => cache.get(key) ?? cache.set(key, make()).get(key);
  return (c) => {
    const route = c.route?.name ?? 'none';
    const code = String(c.status);
    const decision = c.decision ?? 'error';
    cached(`r\0${route}\0${c.method}\0${code}\0${decision}`, () => requests.labels(route, c.method, code, decision)).inc();
    cached(`d\0${route}`, () => duration.labels(route)).observe(c.elapsedMs() / 1000);
    cached(`u\0${c.upstream}`, () => upstreamDuration.labels(c.upstream)).observe(c.upstreamMs / 1000);
  };
}

function measure(name, fn) {
  for (let i = 0; i < 10_000; i++) fn();
  const t = process.cpuUsage();
  for (let i = 0; i < N; i++) fn();
  const u = process.cpuUsage(t);
  console.log(`  ${(((u.user + u.system) / N)).toFixed(3).padStart(7)} µs  ${name}`);
}

console.log(`CPU time per call (${N} calls each; the log writes to /dev/null):`);
const dest = pino.destination({ dest: '/dev/null', sync: true });
const log = createLogger({ destination: dest });
measure('operator log line, redacting logger (before 6990688)', () => log.info({ request_id: ctx.id, method: 'GET', path: ctx.path, route: 'bench', status: 200, decision: 'allow', reason: 'granted', principal: 'service_account:bench', upstream: 'up', duration_ms: 1.235, client_ip: '127.0.0.1' }, 'request'));
measure('operator log line, requestLogger()', requestLogger(log).bind(null, ctx));
// A request of a few milliseconds, so the histograms' bucket search is not the shortest.
const metricsCtx = { ...ctx, elapsedMs: () => 3.1, upstreamMs: 2.05 };
measure('metrics observer (3 series), prom-client labels() children (before issue 6)', labelChildrenObserver().bind(null, metricsCtx));
if (metricsObs?.metricsObserver) measure('metrics observer (3 series)', metricsObs.metricsObserver(new Metrics({ defaults: false })).bind(null, metricsCtx));
if (audit?.requestRecord) measure('audit record serialization', () => audit.requestRecord(ctx));
// The hashes as the product computes them (dist/), on what it hashes: a line's bytes, a token's secret, a JWT.
const line = Buffer.from(audit?.requestRecord ? audit.requestRecord(ctx) : JSON.stringify(ctx.principal));
const chain = await load('audit/chain.js');
measure('SHA-256 of an audit line (hash chain)', chain?.hashLine ? () => chain.hashLine(line) : () => createHash('sha256').update(line).digest('hex'));
const tokens = await load('authn/tokens.js');
const secret = 'A'.repeat(43);
const stored = Buffer.from(createHash('sha256').update(secret).digest('hex'), 'latin1');
measure('SHA-256 + constant-time compare of a token secret (service account)', tokens?.secretMatches ? () => tokens.secretMatches(secret, stored) : () => timingSafeEqual(createHash('sha256').update(secret).digest(), createHash('sha256').update(secret).digest()));
const token = 'gth_k1a2b3c4d5e6_' + secret + 'abcdef';
const jwt = `eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoLTEifQ.${'eyJpc3MiOiJodHRwczovL2lkcC5iZW5jaC5pbnZhbGlkIiwiYXVkIjoiYmVuY2giLCJzY29wZSI6ImJlbmNoLnJlYWQifQ'.repeat(2)}.${'s'.repeat(86)}`;
const outcomes = await load('authn/outcome-cache.js');
measure('SHA-256 base64url of a JWT (verified-token cache key)', outcomes?.OutcomeCache ? () => outcomes.OutcomeCache.key(jwt) : () => createHash('sha256').update(jwt).digest('base64url'));
// What a request with the connection's token costs instead (token-memo.ts): one constant-time comparison.
const memo = await load('authn/token-memo.js');
if (memo?.tokenMemo) {
  // A request's token is a slice of its Authorization header, as in the gateway.
  const header = (t) => `Bearer ${t}`.split('').join('');
  const socket = {};
  const saHeaders = Array.from({ length: 64 }, () => header(token));
  const jwtHeaders = Array.from({ length: 64 }, () => header(jwt));
  let i = 0;
  measure(`the connection's service-account token again (${token.length} characters): constant-time comparison`, () => memo.tokenMemo(socket, saHeaders[i++ & 63].slice(7)));
  measure(`the connection's JWT again (${jwt.length} characters): constant-time comparison`, () => memo.tokenMemo(socket, jwtHeaders[i++ & 63].slice(7)));
}
measure('new Date().toISOString()', () => new Date().toISOString());
