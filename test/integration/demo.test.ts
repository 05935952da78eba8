import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runCli } from '../helpers/cli.js';
import { LISTENING_HTTP } from '../helpers/spawn.js';

const DEMO = fileURLToPath(new URL('../../dist/demo/start.js', import.meta.url));
const SHIPPED = fileURLToPath(new URL('../../gateway.yaml', import.meta.url));

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('npm start: the shipped gateway.yaml with the demo upstream answers a newcomer', async (t) => {
  const upPort = await freePort();
  // The shipped file, moved to free ports so that the test never collides with a running demo.
  const yaml = readFileSync(SHIPPED, 'utf8')
    .replace(/listen: 127\.0\.0\.1:8080/, 'listen: 127.0.0.1:0')
    .replace(/admin: 127\.0\.0\.1:9090/, 'admin: 127.0.0.1:0')
    .replaceAll('http://127.0.0.1:9091', `http://127.0.0.1:${upPort}`)
    .replace(/^store: file:\.\/data\//m, 'store: file:./data/')
    .replace(/file: \.\/data\/audit\.log/, 'file: ./data/audit.log');
  const dir = t.testdir({ 'gateway.yaml': yaml });
  const child = spawn(process.execPath, [DEMO, '-c', join(dir, 'gateway.yaml')], { env: { ...process.env, DEMO_UPSTREAM_PORT: String(upPort) }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listener in:\n${out}`)), 15_000);
    const check = () => {
      const m = LISTENING_HTTP.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout.off('data', check);
        resolve(m[1] as string);
      }
    };
    child.stdout.on('data', check);
  });
  const base = `http://127.0.0.1:${port}`;
  const status = await fetch(`${base}/status`);
  t.equal(status.status, 200);
  t.equal(await status.text(), 'ok\n');
  const echo = await fetch(`${base}/public/hello?x=1`, { headers: { 'x-gatehouse-subject': 'spoof' } });
  t.equal(echo.status, 200);
  const body = (await echo.json()) as { url: string; identity: Record<string, string>; request_id: string };
  t.equal(body.url, '/public/hello?x=1');
  t.same(body.identity, {}, 'a spoofed identity header does not reach the demo upstream');
  t.equal(body.request_id, echo.headers.get('x-request-id'));
  const closed = await fetch(`${base}/api/hello`);
  t.equal(closed.status, 401, 'a protected route refuses a call without a token');

  // README, the admin API: an account holding gatehouse-admin (declared in the shipped file) lists the accounts.
  const admin = /"address":"http:\/\/127\.0\.0\.1:(\d+)","msg":"listening \(admin\)"/.exec(out)?.[1];
  const created = await runCli(['accounts', 'create', 'ops-admin', '--role', 'gatehouse-admin', '-c', join(dir, 'gateway.yaml')]);
  t.equal(created.code, 0, created.stderr);
  let listed: Response | undefined;
  for (let i = 0; i < 40 && listed?.status !== 200; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 50));
    listed = await fetch(`http://127.0.0.1:${admin}/admin/accounts`, { headers: { authorization: `Bearer ${created.stdout.trim()}` } });
  }
  t.equal(listed?.status, 200, 'the admin API answers the new admin');
  t.match(await listed?.json(), [{ name: 'ops-admin', role: 'gatehouse-admin' }]);
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
