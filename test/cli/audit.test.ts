import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import t from 'tap';
import { main } from '../../src/cli/main.js';
import { flushAudit, startGateway } from '../helpers/gateway.js';
import { useFakeAuth } from '../helpers/fake-auth.js';
import { BIN, LISTENING_HTTP } from '../helpers/spawn.js';
import { startUpstream } from '../helpers/upstream.js';

/** An account event appended from another process, as the accounts CLI appends it (the built dist/). */
function cliEvent(configFile: string, e: Record<string, string>): Promise<void> {
  const mod = resolve('dist/audit/append.js');
  const code = `import { appendAuditEvents, auditFileFor } from ${JSON.stringify(mod)}; await appendAuditEvents(auditFileFor(${JSON.stringify(configFile)}), [${JSON.stringify(e)}]);`;
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: 'inherit' });
    c.on('exit', (status) => (status === 0 ? res() : rej(new Error(`exit ${status}`))));
  });
}

/** The CLI in-process (fast); the start/--follow tests spawn the real binary. */
async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += s.endsWith('\n') ? s : s + '\n'), err: (s) => (err += s.endsWith('\n') ? s : s + '\n'), env: {} });
  return { code, out, err };
}

const yaml = (up: string, extra = '') => `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0${extra} }
roles: { viewer: {} }
upstreams: { app: { url: ${up} } }
routes:
  - { name: open, match: { path: /open/** }, upstream: app, public: true }
  - { name: api, match: { path: /api/** }, upstream: app, allow: [{ roles: [viewer] }] }
audit: { file: ./audit.log, flush_interval: 200ms }
`;

function get(port: number, path: string, id: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { 'x-request-id': id }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

t.test('SIGTERM under load leaves one record for every request that got a response', async (t) => {
  const up = await startUpstream(t, (_req, res) => setTimeout(() => res.end('ok'), 5 + Math.random() * 20));
  const dir = t.testdir({ 'gateway.yaml': yaml(up.url, ', limits: { drain_timeout: 10s }') });
  const child = spawn(process.execPath, [BIN, 'start', '-c', join(dir, 'gateway.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const port = await new Promise<number>((res, rej) => {
    const timer = setInterval(() => {
      const m = LISTENING_HTTP.exec(stdout);
      if (m) {
        clearInterval(timer);
        res(Number(m[1]));
      }
    }, 20);
    setTimeout(() => rej(new Error(`no listening line in ${stdout}`)), 10_000).unref();
  });
  const answered = new Set<string>();
  let n = 0;
  const worker = async (w: number) => {
    for (;;) {
      const id = `w${w}-${n++}`;
      try {
        const status = await get(port, w % 3 === 0 ? '/api/x' : '/open/x', id);
        answered.add(`${id}:${status}`);
      } catch {
        return; // the listener is closed: no more responses
      }
    }
  };
  const workers = Array.from({ length: 20 }, (_, w) => worker(w));
  while (answered.size < 200) await new Promise((r) => setTimeout(r, 20));
  const t0 = Date.now();
  child.kill('SIGTERM');
  await Promise.all(workers);
  t.equal(await exited, 0, 'exits 0 after draining');
  t.comment(`stopped ${Date.now() - t0} ms after SIGTERM; ${answered.size} answered`);
  const recs = readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { request_id: string; status: number; event: string });
  const recorded = new Set(recs.filter((r) => r.event === 'request').map((r) => `${r.request_id}:${r.status}`));
  const missing = [...answered].filter((a) => !recorded.has(a));
  t.ok(answered.size >= 200, `${answered.size} requests answered under load`);
  t.same(missing, [], 'every answered request has its record');
  t.equal(recorded.size, recs.filter((r) => r.event === 'request').length, 'no duplicate records');
  const v = await cli(['audit', 'verify', join(dir, 'audit.log')]);
  t.equal(v.code, 0, v.err);
});

t.test('audit verify accepts the log and names the first broken line after an edit, removal or reorder', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, yaml(up.url));
  for (let i = 0; i < 6; i++) await fetch(`${g.url}/open/${i}`).then((r) => r.arrayBuffer());
  await new Promise((r) => setTimeout(r, 20));
  await flushAudit(g.gw);
  const file = join(g.dir, 'audit.log');
  const good = readFileSync(file, 'utf8');
  const lines = good.trimEnd().split('\n');
  t.equal(lines.length, 6);
  let r = await cli(['audit', 'verify', '-c', g.configFile]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /OK \(6 records/);
  const tamper = async (name: string, edit: (ls: string[]) => string[], line: RegExp) => {
    writeFileSync(file, edit([...lines]).join('\n') + '\n');
    const v = await cli(['audit', 'verify', file]);
    t.equal(v.code, 1, `${name}: exit 1`);
    t.match(v.err, line, `${name}: names the line`);
  };
  await tamper('edited middle line', (ls) => ((ls[2] = ls[2]!.replace('"allow"', '"deny"')), ls), /audit\.log:4:/);
  await tamper('removed middle line', (ls) => (ls.splice(3, 1), ls), /audit\.log:4:/);
  await tamper('reordered lines', (ls) => ([ls[1], ls[2]] = [ls[2]!, ls[1]!]) && ls, /audit\.log:2:/);
  await tamper('edited first line', (ls) => ((ls[0] = ls[0]!.replace('/open/0', '/open/9')), ls), /audit\.log:2:/);
  await tamper('removed first line', (ls) => ls.slice(1), /audit\.log:1:/);
  await tamper('edited last line', (ls) => ((ls[5] = ls[5]!.replace('"allow"', '"error"')), ls), /audit\.log:6:/);
  await tamper('removed last line', (ls) => ls.slice(0, 5), /removed/);
  await tamper('broken JSON', (ls) => ((ls[1] = ls[1]!.slice(0, 20)), ls), /audit\.log:2:/);
  writeFileSync(file, good);
  r = await cli(['audit', 'verify', file]);
  t.equal(r.code, 0);
  t.equal((await cli(['audit', 'verify', join(g.dir, 'nope.log')])).code, 1);
});

t.test('account events from the CLI and the running gateway share one valid chain', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, yaml(up.url));
  useFakeAuth(g.gw);
  const file = join(g.dir, 'audit.log');
  for (let i = 0; i < 30; i++) {
    await fetch(`${g.url}/api/${i}`, { headers: { authorization: `Bearer sa-robot-viewer` } }).then((r) => r.arrayBuffer());
    // Another process, as the accounts CLI is.
    if (i % 10 === 0) await cliEvent(g.configFile, { event: 'token.rotated', account: 'robot', key_id: `key_${i}` });
    if (i % 5 === 0) void flushAudit(g.gw);
  }
  await cliEvent(g.configFile, { event: 'account.created', account: 'other', key_id: 'k' });
  await new Promise((r) => setTimeout(r, 20));
  await flushAudit(g.gw);
  const v = await cli(['audit', 'verify', file]);
  t.equal(v.code, 0, v.err);
  t.match(v.out, /OK \(34 records/);

  const json = await cli(['audit', '-c', g.configFile, '--account', 'robot', '--json']);
  t.equal(json.code, 0, json.err);
  const recs = json.out.trim().split('\n').map((l) => JSON.parse(l) as { event: string });
  t.equal(recs.length, 33, 'requests and events of that account only');
  t.equal(recs.filter((r) => r.event === 'token.rotated').length, 3);
  const table = await cli(['audit', '-c', g.configFile, '--since', '1h']);
  t.match(table.out, /^TIME\s+EVENT\s+PRINCIPAL/);
  t.match(table.out, /sa:robot\s+GET \/api\/0\s+200\s+allow\s+granted/);
  t.match(table.out, /account\.created\s+operator:\S+\s+other/);
  t.equal((await cli(['audit', '-c', g.configFile, '--since', 'yesterday'])).code, 2);
  const none = await cli(['audit', '-c', g.configFile, '--account', 'ghost', '--json']);
  t.equal(none.out, '');
});

t.test('audit --follow prints new lines as they are written', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(t, yaml(up.url));
  const child = spawn(process.execPath, [BIN, 'audit', '-c', g.configFile, '--follow', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => setTimeout(r, 300));
  await fetch(`${g.url}/open/followed`).then((r) => r.arrayBuffer());
  await new Promise((r) => setTimeout(r, 20));
  await flushAudit(g.gw);
  for (let i = 0; i < 50 && !out.includes('/open/followed'); i++) await new Promise((r) => setTimeout(r, 100));
  t.match(out, /"path":"\/open\/followed"/);
});

t.test('SIGUSR2 makes a running gateway reopen the audit file after logrotate moved it', async (t) => {
  const up = await startUpstream(t);
  const dir = t.testdir({ 'gateway.yaml': yaml(up.url) });
  const child = spawn(process.execPath, [BIN, 'start', '-c', join(dir, 'gateway.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 200; i++) {
      const m = re.exec(stdout);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${re} in ${stdout}`);
  };
  const port = Number((await waitFor(LISTENING_HTTP))[1]);
  const file = join(dir, 'audit.log');
  t.equal(await get(port, '/open/before', 'before'), 200);
  for (let i = 0; i < 100 && !(existsSync(file) && readFileSync(file, 'utf8').includes('before')); i++) await new Promise((r) => setTimeout(r, 50));
  renameSync(file, `${file}.1`);
  child.kill('SIGUSR2');
  await waitFor(/reopening the audit log/);
  t.equal(await get(port, '/open/after', 'after'), 200);
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  const ids = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { request_id: string }).request_id);
  t.same(ids(`${file}.1`), ['before']);
  t.same(ids(file), ['after']);
  t.equal((await cli(['audit', 'verify', file])).code, 0);
});
