import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { startGateway } from '../helpers/gateway.js';
import { LISTENING_HTTP, spawnCli } from '../helpers/spawn.js';
import { startUpstream } from '../helpers/upstream.js';

function auditRecords(file: string): { path?: string; status?: number; decision?: string }[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { path?: string; status?: number; decision?: string });
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

t.test('SIGTERM during a slow request: the response is delivered, new connections are refused, exit 0', async (t) => {
  let arrived: () => void = () => {};
  const arrivedP = new Promise<void>((r) => (arrived = r));
  const up = await startUpstream(t, (_req, res) => {
    arrived();
    setTimeout(() => res.end('slow but complete'), 1500);
  });
  const dir = t.testdir({
    'gateway.yaml': `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
upstreams: { app: { url: "${up.url}" } }
routes: [{ name: all, match: { path: /** }, upstream: app, public: true }]
`,
  });
  const p = spawnCli(t, ['start', '-c', join(dir, 'gateway.yaml')]);
  const m = await p.waitFor(LISTENING_HTTP);
  const port = Number(m[1]);

  const slow = fetch(`http://127.0.0.1:${port}/slow`).then(async (r) => ({ status: r.status, body: await r.text() }));
  await arrivedP;
  const sent = Date.now();
  p.child.kill('SIGTERM');
  await p.waitFor(/shutting down/);
  let done = false;
  void slow.then(() => (done = true));
  let refused = false;
  for (let i = 0; i < 20 && !refused; i++) {
    refused = !(await connects(port));
    if (!refused) await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(refused && !done, 'a new connection is refused while the slow request is still draining');
  const r = await slow;
  t.equal(r.status, 200);
  t.equal(r.body, 'slow but complete', 'the in-flight response is delivered whole');
  t.equal(await p.exited, 0, 'exit 0');
  t.comment(`exited ${Date.now() - sent} ms after SIGTERM`);
  t.ok(Date.now() - sent < 8000, 'exited promptly after the drain') || t.comment(p.stdout());
  t.match(p.stdout(), /"msg":"stopped"/);
  t.match(auditRecords(join(dir, 'data', 'audit.log')), [{ path: '/slow', status: 200, decision: 'allow' }], 'the drained request has its audit record');
});

t.test('close(): idle keep-alive connections close at once; a stuck request is cut after drain_timeout', async (t) => {
  const up = await startUpstream(t, () => {
    /* never answers */
  });
  const g = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0, limits: { drain_timeout: 500ms } }
upstreams: { app: { url: "${up.url}", timeout: 30s } }
routes:
  - { name: all, match: { path: /** }, upstream: app, public: true }
`,
  );
  const port = g.gw.addresses.http!.port;
  // An idle keep-alive connection.
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const stuck = new Promise<string>((resolve) => {
    http.get(`${g.url}/stuck`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve('end'));
      res.on('error', () => resolve('cut'));
    }).on('error', () => resolve('cut'));
  });
  for (let i = 0; i < 100 && g.gw.inflight === 0; i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(g.gw.inflight, 1);
  const started = Date.now();
  await g.gw.close();
  const took = Date.now() - started;
  t.ok(took >= 450 && took < 1500, `close() took ${took} ms for a 500 ms drain_timeout`);
  t.equal(await stuck, 'cut', 'the stuck request was cut');
  t.equal(await connects(port), false, 'no longer listening');
  t.ok(g.logs.some((l) => l.includes('drain timeout')));
  // The request cut in the last turn before the audit log closed still has its record.
  const cut = auditRecords(join(g.dir, 'data', 'audit.log')).filter((r) => r.path === '/stuck');
  t.equal(cut.length, 1, 'one record for the cut request');
  t.match(cut[0], { status: 499, decision: 'error' });
});

t.test('a request that arrives on a kept-alive connection while draining is answered with Connection: close', async (t) => {
  let release: () => void = () => {};
  let arrived: () => void = () => {};
  const arrivedP = new Promise<void>((r) => (arrived = r));
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/slow') {
      release = () => res.end('slow');
      arrived();
    } else res.end('fast');
  });
  const g = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0 }
upstreams: { app: { url: "${up.url}" } }
routes: [{ name: all, match: { path: /** }, upstream: app, public: true }]
`,
  );
  const slow = fetch(`${g.url}/slow`).then((r) => r.text());
  await arrivedP;
  const closing = g.gw.close();
  t.equal(g.gw.draining, true);
  release();
  t.equal(await slow, 'slow');
  await closing;
});
