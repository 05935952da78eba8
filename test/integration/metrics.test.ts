import { spawnSync } from 'node:child_process';
import t from 'tap';
import { startGateway } from '../helpers/gateway.js';
import { useFakeAuth } from '../helpers/fake-auth.js';
import { startUpstream } from '../helpers/upstream.js';

const yaml = (up: string) => `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
roles: { viewer: {}, other: {} }
upstreams:
  app: { url: ${up} }
  down: { url: http://127.0.0.1:1 }
routes:
  - { name: open, match: { path: /open/** }, upstream: app, public: true }
  - { name: api, match: { path: /api/** }, upstream: app, allow: [{ roles: [viewer] }] }
  - { name: down, match: { path: /down/** }, upstream: down, public: true }
audit: { file: ./audit.log }
`;

/** Parses the text exposition into series → value. */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** A histogram series' buckets in exposition order, its _sum and _count. */
function histogram(s: Map<string, number>, name: string, label: string): { buckets: [string, number][]; sum: number | undefined; count: number | undefined } {
  const buckets: [string, number][] = [];
  for (const [k, v] of s) {
    const m = new RegExp(`^${name}_bucket\\{le="([^"]+)",${label}\\}$`).exec(k);
    if (m) buckets.push([m[1]!, v]);
  }
  return { buckets, sum: s.get(`${name}_sum{${label}}`), count: s.get(`${name}_count{${label}}`) };
}

const scrape = async (adminUrl: string) => {
  const res = await fetch(`${adminUrl}/metrics`);
  return { res, text: await res.text() };
};

t.test('/metrics counts match the requests sent', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, yaml(up.url));
  useFakeAuth(g.gw);
  const send = async (n: number, path: string, init: RequestInit = {}) => {
    for (let i = 0; i < n; i++) await fetch(`${g.url}${path}`, init).then((r) => r.arrayBuffer());
  };
  const started = performance.now();
  await send(5, '/open/a');
  await send(3, '/open/a', { method: 'POST', body: 'x' });
  await send(4, '/api/a', { headers: { authorization: 'Bearer sa-robot-viewer' } });
  await send(2, '/api/a');
  await send(3, '/api/a', { headers: { authorization: 'Bearer expired-x' } });
  await send(2, '/api/a', { headers: { authorization: 'Bearer sa-bob-other' } });
  await send(6, '/nothing');
  await send(2, '/down/x');
  const wallSeconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 30));
  const { res, text } = await scrape(g.adminUrl);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const s = series(text);
  const req = (route: string, method: string, code: number, decision: string) => s.get(`gatehouse_requests_total{route="${route}",method="${method}",code="${code}",decision="${decision}"}`);
  t.equal(req('open', 'GET', 200, 'allow'), 5);
  t.equal(req('open', 'POST', 200, 'allow'), 3);
  t.equal(req('api', 'GET', 200, 'allow'), 4);
  t.equal(req('api', 'GET', 401, 'deny'), 5);
  t.equal(req('api', 'GET', 403, 'deny'), 2);
  t.equal(req('none', 'GET', 404, 'deny'), 6);
  t.equal(req('down', 'GET', 502, 'error'), 2);
  t.equal(s.get('gatehouse_auth_failures_total{reason="token_missing"}'), 2);
  t.equal(s.get('gatehouse_auth_failures_total{reason="token_expired"}'), 3);
  t.equal(s.get('gatehouse_upstream_errors_total{upstream="down",kind="connect"}'), 2);
  t.equal(s.get('gatehouse_request_duration_seconds_count{route="open"}'), 8);
  t.equal(s.get('gatehouse_upstream_duration_seconds_count{upstream="app"}'), 12);
  for (const [name, label, count] of [['gatehouse_request_duration_seconds', 'route="open"', 8], ['gatehouse_request_duration_seconds', 'route="none"', 6], ['gatehouse_upstream_duration_seconds', 'upstream="app"', 12]] as const) {
    const h = histogram(s, name, label);
    t.same(
      h.buckets.map(([le]) => le),
      ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '+Inf'],
      `${name}{${label}} has every bucket`,
    );
    t.ok(
      h.buckets.every(([, v], i) => i === 0 || v >= h.buckets[i - 1]![1]),
      `${name}{${label}} buckets are cumulative`,
    );
    t.equal(h.buckets.at(-1)?.[1], count, `${name}{${label}} +Inf is every request`);
    t.equal(h.count, count);
    t.ok(h.sum !== undefined && h.sum > 0 && h.sum < wallSeconds, `${name}{${label}} sum ${h.sum} s within the ${wallSeconds} s sent`);
  }
  t.equal(s.get('gatehouse_inflight_requests'), 0);
  t.equal(s.get('gatehouse_config_reloads_total{result="success"}'), 0);
  t.ok(s.has('process_cpu_user_seconds_total'), 'prom-client default metrics');
  await g.gw.reload('test');
  g.writeConfig('routes: [');
  await g.gw.reload('test');
  const after = series((await scrape(g.adminUrl)).text);
  t.equal(after.get('gatehouse_config_reloads_total{result="success"}'), 1);
  t.equal(after.get('gatehouse_config_reloads_total{result="failure"}'), 1);
  // The Metrics object outlives reloads: the same series keep counting.
  await send(2, '/open/a');
  await send(1, '/api/a');
  await new Promise((r) => setTimeout(r, 30));
  const later = series((await scrape(g.adminUrl)).text);
  t.equal(later.get('gatehouse_requests_total{route="open",method="GET",code="200",decision="allow"}'), 7);
  t.equal(later.get('gatehouse_requests_total{route="api",method="GET",code="401",decision="deny"}'), 6);
  t.equal(later.get('gatehouse_auth_failures_total{reason="token_missing"}'), 3);
  t.equal(later.get('gatehouse_request_duration_seconds_count{route="open"}'), 10);
  t.equal(later.get('gatehouse_request_duration_seconds_bucket{le="+Inf",route="open"}'), 10);
  t.ok(later.get('gatehouse_request_duration_seconds_sum{route="open"}')! > s.get('gatehouse_request_duration_seconds_sum{route="open"}')!);
  t.equal(later.get('gatehouse_upstream_duration_seconds_count{upstream="app"}'), 14);
  t.equal((await fetch(`${g.adminUrl}/metrics`, { method: 'POST' })).status, 405);
});

t.test('500 requests with random paths and methods add no new series', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, yaml(up.url));
  // One of each kind first, so that the fixed set of series exists.
  for (const m of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND']) {
    await fetch(`${g.url}/nothing`, { method: m }).then((r) => r.arrayBuffer());
    await fetch(`${g.url}/open/x`, { method: m }).then((r) => r.arrayBuffer());
  }
  await new Promise((r) => setTimeout(r, 30));
  const names = (text: string) => new Set([...series(text).keys()].filter((k) => k.startsWith('gatehouse_')));
  const before = names((await scrape(g.adminUrl)).text);
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND', 'MKCOL', 'LOCK', 'UNLOCK', 'SEARCH', 'REPORT', 'PURGE'];
  const rnd = () => Math.random().toString(36).slice(2);
  const batch: Promise<unknown>[] = [];
  let other = 1; // PROPFIND /nothing above
  for (let i = 0; i < 500; i++) {
    const m = methods[i % methods.length]!;
    const path = i % 2 ? `/open/${rnd()}/${rnd()}?q=${rnd()}` : `/${rnd()}/${rnd()}`;
    if (!(i % 2) && i % methods.length >= 8) other++;
    batch.push(fetch(`${g.url}${path}`, { method: m, headers: { 'user-agent': rnd(), 'x-request-id': rnd() } }).then((r) => r.arrayBuffer()));
    if (batch.length === 25) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  await new Promise((r) => setTimeout(r, 30));
  const { text } = await scrape(g.adminUrl);
  const after = names(text);
  const added = [...after].filter((k) => !before.has(k));
  t.same(added, [], 'no new gatehouse_* series');
  t.notMatch(text, /PROPFIND|MKCOL|PURGE/, 'unknown methods are OTHER');
  const s = series(text);
  t.equal(s.get('gatehouse_requests_total{route="none",method="OTHER",code="404",decision="deny"}'), other, 'OTHER counts the unknown methods');
});

const promtoolMissing = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).error !== undefined;
// Outside CI a missing promtool skips the test; in CI it fails (.ci/system-deps installs the prometheus package).
const skip = promtoolMissing && !process.env.CI ? 'promtool is not installed (apt-get install prometheus, or run .ci/system-deps)' : false;

t.test('promtool check metrics accepts the exposition', { skip }, async (t) => {
  if (promtoolMissing) {
    t.fail('promtool is not installed: CI must install it (.ci/system-deps installs the prometheus package)');
    return;
  }
  const up = await startUpstream(t);
  const g = await startGateway(t, yaml(up.url));
  useFakeAuth(g.gw);
  await fetch(`${g.url}/open/a`).then((r) => r.arrayBuffer());
  await fetch(`${g.url}/api/a`).then((r) => r.arrayBuffer());
  await fetch(`${g.url}/down/a`).then((r) => r.arrayBuffer());
  await fetch(`${g.url}/nothing`).then((r) => r.arrayBuffer());
  g.gw.metrics.tokenExpiry.labels('robot').set(1_900_000_000);
  await new Promise((r) => setTimeout(r, 30));
  const { text } = await scrape(g.adminUrl);
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
});
