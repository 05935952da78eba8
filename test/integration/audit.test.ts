import { readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { auditLogOf } from '../../src/audit/plugin.js';
import { verifyText, readHead } from '../../src/audit/chain.js';
import { flushAudit, startGateway } from '../helpers/gateway.js';
import { useFakeAuth } from '../helpers/fake-auth.js';
import { startUpstream } from '../helpers/upstream.js';

interface Rec {
  event: string;
  request_id: string;
  principal: { kind: string; subject: string } | null;
  key_id: string | null;
  issuer?: string;
  kid?: string;
  route: string | null;
  method: string;
  path: string;
  status: number;
  decision: string;
  reason: string | null;
  upstream: string | null;
  duration_ms: number;
  client_ip: string;
  user_agent: string | null;
  prev: string;
}

function config(upUrl: string, extra = '') {
  return `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, limits: { max_body: 100b } }
roles: { viewer: {}, other: {} }
upstreams:
  app: { url: ${upUrl} }
  slow: { url: ${upUrl}, timeout: 300ms }
  down: { url: http://127.0.0.1:1 }
routes:
  - { name: open, match: { path: /open/** }, upstream: app, public: true }
  - { name: api, match: { path: /api/** }, upstream: app, allow: [{ roles: [viewer] }] }
  - { name: slow, match: { path: /slow/** }, upstream: slow, public: true }
  - { name: down, match: { path: /down/** }, upstream: down, public: true }
audit: { file: ./logs/audit.log, flush_interval: 50ms${extra} }
`;
}

async function readRecords(gw: Parameters<typeof auditLogOf>[0], file: string): Promise<Rec[]> {
  await flushAudit(gw);
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Rec);
}

async function waitIdle(gw: { inflight: number }) {
  for (let i = 0; i < 200 && gw.inflight > 0; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 20));
}

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (d) => (out += d.toString()));
    s.on('end', () => resolve(out));
    s.on('close', () => resolve(out));
    s.on('error', reject);
  });
}

t.test('every kind of request leaves exactly one record with principal, route, decision and reason', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url?.startsWith('/slow') || req.url?.startsWith('/open/hang')) return; // never answers
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  const g = await startGateway(t, config(up.url));
  useFakeAuth(g.gw);
  const file = join(g.dir, 'logs/audit.log');
  const port = g.gw.addresses.http!.port;
  const H = (token: string) => ({ authorization: `Bearer ${token}`, 'user-agent': 'audit-test/1' });
  const N = 3;
  const expected: Array<Partial<Rec>> = [];
  for (let i = 0; i < N; i++) {
    const cases: Array<[string, RequestInit, Partial<Rec>]> = [
      [`/open/a?token=secret-in-query-${i}`, {}, { status: 200, decision: 'allow', reason: 'public', route: 'open', principal: null, path: '/open/a' }],
      [`/api/x`, { headers: H(`sa-robot${i}-viewer`) }, { status: 200, decision: 'allow', reason: 'granted', route: 'api', principal: { kind: 'service_account', subject: `robot${i}` }, key_id: `key_robot${i}` }],
      [`/api/y`, { headers: H(`jwt-alice${i}-viewer`) }, { status: 200, decision: 'allow', route: 'api', principal: { kind: 'jwt', subject: `alice${i}` }, issuer: 'corp', kid: 'k1' }],
      [`/api/x`, {}, { status: 401, decision: 'deny', reason: 'token_missing', route: 'api', principal: null }],
      [`/api/x`, { headers: H(`expired-abc${i}`) }, { status: 401, decision: 'deny', reason: 'token_expired', route: 'api' }],
      [`/api/x`, { headers: H(`sa-bob${i}-other`) }, { status: 403, decision: 'deny', route: 'api', principal: { kind: 'service_account', subject: `bob${i}` } }],
      [`/nowhere/${i}`, {}, { status: 404, decision: 'deny', reason: 'no_route', route: null }],
      [`/open/%2F${i}`, {}, { status: 400, decision: 'deny', route: null }],
      [`/open/big`, { method: 'POST', body: 'x'.repeat(500) }, { status: 413, decision: 'deny' }],
      [`/down/z`, {}, { status: 502, decision: 'error', route: 'down', upstream: 'down' }],
      [`/slow/z`, {}, { status: 504, decision: 'error', route: 'slow', upstream: 'slow', reason: 'upstream_timeout' }],
    ];
    for (const [path, init, want] of cases) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, init);
      await res.arrayBuffer();
      t.equal(res.status, want.status, `${path} → ${want.status}`);
      expected.push({ ...want, method: init.method ?? 'GET' });
    }
    // 431: headers over max_header_size, refused by Node's parser.
    const r431 = await rawRequest(port, `GET /open/a HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    t.match(r431, /^HTTP\/1.1 431/);
    expected.push({ status: 431, decision: 'deny' });
    // Client abort while the upstream is still thinking.
    const ac = new AbortController();
    const p = fetch(`http://127.0.0.1:${port}/open/hang`, { signal: ac.signal }).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    t.equal(await p, 'aborted');
    expected.push({ status: 499, decision: 'error', reason: 'client_aborted', route: 'open', upstream: 'app' });
  }
  await waitIdle(g.gw);
  const recs = (await readRecords(g.gw, file)).filter((r) => r.event === 'request');
  t.equal(recs.length, expected.length, `${expected.length} requests, as many records`);
  // Records are written when requests end; match them by order of arrival within kinds.
  const byStatus = new Map<number, Rec[]>();
  for (const r of recs) byStatus.set(r.status, [...(byStatus.get(r.status) ?? []), r]);
  for (const want of expected) {
    const list = byStatus.get(want.status!) ?? [];
    const i = list.findIndex((r) => Object.entries(want).every(([k, v]) => JSON.stringify(r[k as keyof Rec]) === JSON.stringify(v)));
    t.ok(i >= 0, `a record matches ${JSON.stringify(want)}`);
    if (i >= 0) list.splice(i, 1);
  }
  for (const r of recs) {
    t.ok(r.request_id && typeof r.duration_ms === 'number' && r.client_ip === '127.0.0.1', 'request_id, duration_ms, client_ip');
    t.ok(r.decision && r.reason, 'every record has a decision and a reason');
    t.notOk(r.path.includes('?'), 'path has no query');
    t.ok('principal' in r && 'route' in r && 'key_id' in r, 'principal, route and key_id present (null when none)');
  }
  const jwt = recs.find((r) => r.principal?.kind === 'jwt');
  t.equal(jwt?.issuer, 'corp');
  const text = readFileSync(file, 'utf8');
  for (const secret of ['sa-robot', 'jwt-alice', 'expired-abc', 'secret-in-query', 'Bearer']) {
    t.notOk(text.includes(secret), `no "${secret}" in the audit file`);
    t.notOk(g.logs.join('\n').includes(secret), `no "${secret}" in the gateway log`);
  }
  t.same(verifyText(text, { head: readHead(file) }), { ok: true, records: recs.length });
});

t.test('requests that end together each get one record, their own id and duration, and one count', async (t) => {
  // The upstream holds every answer until all N requests are in, then sends them at once: they end in the same turn or two.
  const N = 40;
  const HOLD_MS = 60;
  const held: (() => void)[] = [];
  const up = await startUpstream(t, (_req, res) => {
    held.push(() => res.end('ok'));
    if (held.length === N) setTimeout(() => held.forEach((f) => f()), HOLD_MS);
  });
  const g = await startGateway(t, config(up.url));
  const started = performance.now();
  const ids = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const res = await fetch(`${g.url}/open/burst/${i}`);
      await res.arrayBuffer();
      return res.headers.get('x-request-id');
    }),
  );
  const wall = performance.now() - started;
  await waitIdle(g.gw);
  const recs = (await readRecords(g.gw, join(g.dir, 'logs/audit.log'))).filter((r) => r.path.startsWith('/open/burst/'));
  t.equal(recs.length, N, 'one record per request');
  t.same(new Set(recs.map((r) => r.request_id)), new Set(ids), 'each with the id its client got');
  t.same(new Set(recs.map((r) => r.path)), new Set(ids.map((_, i) => `/open/burst/${i}`)));
  t.ok(
    recs.every((r) => r.duration_ms >= HOLD_MS - 1 && r.duration_ms <= wall + 1),
    `durations within ${HOLD_MS} ms and the ${wall.toFixed(0)} ms the burst took: ${recs.map((r) => r.duration_ms).join(', ')}`,
  );
  t.equal(verifyText(readFileSync(join(g.dir, 'logs/audit.log'), 'utf8')).ok, true, 'the chain verifies');
  const metrics = await (await fetch(`${g.adminUrl}/metrics`)).text();
  t.match(metrics, new RegExp(`gatehouse_requests_total\\{route="open",method="GET",code="200",decision="allow"\\} ${N}\\n`), 'counted once each');
});

t.test('field values over 1 kB are cut and marked', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, config(up.url));
  const res = await fetch(`${g.url}/open/${'p'.repeat(3000)}`, { headers: { 'user-agent': 'u'.repeat(5000) } });
  await res.arrayBuffer();
  await waitIdle(g.gw);
  const [rec] = await readRecords(g.gw, join(g.dir, 'logs/audit.log'));
  t.ok(rec!.path.length < 1100 && rec!.path.endsWith('…[cut]'), 'path cut');
  t.ok(rec!.user_agent!.length < 1100 && rec!.user_agent!.endsWith('…[cut]'), 'user agent cut');
});

t.test('config.reloaded events join the chain', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, config(up.url));
  await fetch(`${g.url}/open/a`).then((r) => r.arrayBuffer());
  await waitIdle(g.gw);
  t.equal((await g.gw.reload('test')).ok, true);
  g.writeConfig('routes: [');
  t.equal((await g.gw.reload('test')).ok, false);
  const recs = await readRecords(g.gw, join(g.dir, 'logs/audit.log'));
  t.same(
    recs.map((r) => [r.event, r.reason]),
    [
      ['request', 'public'],
      ['config.reloaded', 'reloaded'],
      ['config.reloaded', 'config_invalid'],
    ],
  );
  t.equal(verifyText(readFileSync(join(g.dir, 'logs/audit.log'), 'utf8')).ok, true);
});

t.test('an existing audit file is continued, not restarted', async (t) => {
  const up = await startUpstream(t);
  const g1 = await startGateway(t, config(up.url));
  const file = join(g1.dir, 'logs/audit.log');
  await fetch(`${g1.url}/open/1`).then((r) => r.arrayBuffer());
  await waitIdle(g1.gw);
  await g1.gw.close();
  const prior = readFileSync(file, 'utf8');
  // A second gateway on the same directory.
  const { Gateway } = await import('../../src/app.js');
  const { captureLogger } = await import('../helpers/gateway.js');
  const logs2: string[] = [];
  const gw2 = await Gateway.start({ configFile: g1.configFile, log: captureLogger(logs2), watchConfig: false });
  t.teardown(() => gw2.close());
  await fetch(`http://127.0.0.1:${gw2.addresses.http!.port}/open/2`).then((r) => r.arrayBuffer());
  await waitIdle(gw2);
  await gw2.close();
  const text = readFileSync(file, 'utf8');
  t.ok(text.startsWith(prior), text);
  t.same(verifyText(text, { head: readHead(file) }), { ok: true, records: 2 });
});

t.test('audit.required: requests get 503 while the audit log cannot be written, and are served again once it can', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, config(up.url, ', required: true').replace('./logs/audit.log', './blocker/audit.log'), { blocker: 'a file where a directory should be' });
  const dir = g.dir;
  t.equal(auditLogOf(g.gw)!.failing, true);
  const res = await fetch(`${g.url}/open/a`);
  t.equal(res.status, 503);
  t.equal(((await res.json()) as { code: string }).code, 'GW_AUDIT_UNAVAILABLE');
  t.ok(g.logs.some((l) => l.includes('AUDIT LOG CANNOT BE WRITTEN')), 'logged loudly');
  await flushAudit(g.gw);
  const metrics = await fetch(`${g.adminUrl}/metrics`).then((r) => r.text());
  t.match(metrics, /gatehouse_audit_write_failures_total [1-9]/);
  // Repair: the directory can be created now.
  rmSync(join(dir, 'blocker'));
  mkdirSync(join(dir, 'blocker'));
  await flushAudit(g.gw);
  t.equal(auditLogOf(g.gw)!.failing, false);
  const ok = await fetch(`${g.url}/open/a`);
  await ok.arrayBuffer();
  t.equal(ok.status, 200);
  await waitIdle(g.gw);
  await flushAudit(g.gw);
  const recs = readFileSync(join(dir, 'blocker/audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec);
  t.same(recs.map((r) => r.status), [503, 200], 'the refused request was kept and written once the log came back');
});

t.test('audit.required false: requests are served while the audit log fails', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, config(up.url).replace('./logs/audit.log', './blocker/audit.log'), { blocker: 'x' });
  const res = await fetch(`${g.url}/open/a`);
  await res.arrayBuffer();
  t.equal(res.status, 200);
});

t.test('SIGUSR2-style reopen and size rotation keep one valid chain per file', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, config(up.url, ', max_size: 2kb'));
  const file = join(g.dir, 'logs/audit.log');
  for (let i = 0; i < 20; i++) {
    await fetch(`${g.url}/open/${i}`).then((r) => r.arrayBuffer());
    await waitIdle(g.gw);
    await flushAudit(g.gw);
  }
  const { existsSync, renameSync } = await import('node:fs');
  t.ok(existsSync(`${file}.1`), 'rotated by size');
  for (const f of [file, `${file}.1`]) {
    const text = readFileSync(f, 'utf8');
    t.ok(Buffer.byteLength(text) <= 2048, `${f} stays under max_size`);
    t.equal(verifyText(text, { head: readHead(f) }).ok, true, `${f} verifies`);
  }
  // logrotate moves the file, then sends SIGUSR2.
  renameSync(file, `${file}.moved`);
  await auditLogOf(g.gw)!.reopen();
  await fetch(`${g.url}/open/after`).then((r) => r.arrayBuffer());
  await waitIdle(g.gw);
  await flushAudit(g.gw);
  t.equal(readFileSync(file, 'utf8').trim().split('\n').length, 1);
  t.equal(verifyText(readFileSync(file, 'utf8')).ok, true);
  writeFileSync(join(g.dir, 'unused'), '');
});
