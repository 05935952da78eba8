import { pbkdf2 } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import t from 'tap';
import { Gateway } from '../../src/app.js';
import { captureLogger, startGateway } from '../helpers/gateway.js';
import { LISTENING_HTTP, spawnCli } from '../helpers/spawn.js';
import { startUpstream } from '../helpers/upstream.js';
import { until } from '../helpers/until.js';

const good = (body: string, listen = '127.0.0.1:0') => `
server: { listen: ${listen} }
routes:
  - name: hello
    match: { path: /hello }
    public: true
    respond: { body: "${body}" }
`;

/** Broken on line 6 (a key the schema does not know). */
const unknownKey = `
server: { listen: 127.0.0.1:0 }
routes:
  - name: hello
    match: { path: /hello }
    publik: true
    respond: { body: "broken" }
`;

/** A YAML syntax error (unclosed flow mapping) on line 5. */
const syntaxError = `
server: { listen: 127.0.0.1:0 }
routes:
  - name: hello
    match: { path: /hello
    public: true
`;

const pbkdf2P = promisify(pbkdf2);

async function text(url: string): Promise<string> {
  return (await fetch(url)).text();
}

t.test('reload(): a broken file is refused with its line logged, the old routes keep serving; a good one swaps', async (t) => {
  const g = await startGateway(t, good('one'));
  t.equal(await text(`${g.url}/hello`), 'one');

  g.writeConfig(unknownKey);
  const r1 = await g.gw.reload('test');
  t.equal(r1.ok, false);
  t.equal(await text(`${g.url}/hello`), 'one', 'old routes still serve after an invalid file');
  const line = g.logs.find((l) => l.includes('configuration reload refused'));
  t.ok(line, 'the refusal is logged');
  t.match(line, /gateway\.yaml:6:\d+: routes\[0\]/, 'with file:line and the key path');
  t.match(line, /publik/);

  g.writeConfig(syntaxError);
  const r2 = await g.gw.reload('test');
  t.equal(r2.ok, false);
  t.equal(await text(`${g.url}/hello`), 'one', 'old routes still serve after a YAML syntax error');
  t.match(g.logs.filter((l) => l.includes('configuration reload refused')).at(-1), /gateway\.yaml:\d+:\d+: invalid YAML/);

  g.writeConfig('');
  t.equal((await g.gw.reload('test')).ok, true, 'an empty file is a valid (empty) configuration');
  t.equal((await fetch(`${g.url}/hello`)).status, 404);

  g.writeConfig(good('two'));
  const r3 = await g.gw.reload('test');
  t.equal(r3.ok, true);
  t.equal(await text(`${g.url}/hello`), 'two', 'the new routes serve');
  t.ok(g.logs.some((l) => l.includes('configuration reloaded')));
});

t.test('reload keeps a warm upstream pool when the upstream is unchanged, and in-flight requests finish on the old snapshot', async (t) => {
  let release: () => void = () => {};
  let arrived: () => void = () => {};
  const arrivedP = new Promise<void>((r) => (arrived = r));
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/slow') {
      release = () => res.end('slow done');
      arrived();
      return;
    }
    res.end('fast');
  });
  const yaml = (extra: string) => `
server: { listen: 127.0.0.1:0 }
upstreams: { app: { url: "${up.url}" } }
routes:
  - { name: all, match: { path: /** }, upstream: app, public: true }
${extra}`;
  const g = await startGateway(t, yaml(''));
  const before = g.gw.runtime.upstreams.get('app');
  const slow = fetch(`${g.url}/slow`).then((r) => r.text());
  await arrivedP;
  g.writeConfig(yaml('  - { name: extra, match: { path: /x }, public: true, respond: { body: x } }'));
  t.equal((await g.gw.reload()).ok, true);
  t.equal(g.gw.runtime.upstreams.get('app'), before, 'same pool object after reload');
  release();
  t.equal(await slow, 'slow done', 'the in-flight request completed');
});

t.test('a changed file is picked up by the watcher (watchConfig)', async (t) => {
  const dir = t.testdir({ 'gateway.yaml': good('one') });
  const configFile = join(dir, 'gateway.yaml');
  const logs: string[] = [];
  const gw = await Gateway.start({ configFile, log: captureLogger(logs) });
  t.teardown(() => gw.close());
  const url = `http://127.0.0.1:${gw.addresses.http!.port}/hello`;
  t.equal(await text(url), 'one');

  writeFileSync(configFile, unknownKey);
  t.ok(await until(async () => logs.some((l) => l.includes('configuration reload refused'))), 'the broken file is noticed and refused');
  t.equal(await text(url), 'one');

  writeFileSync(configFile, good('three'));
  t.ok(await until(async () => (await text(url)) === 'three'), 'the good file is picked up');
});

t.test('a change written right after start is seen even while the thread pool is busy', async (t) => {
  // fs.watchFile took its baseline from its first stat, run on the libuv thread pool: with the pool
  // busy as the watch began, a file written right after start became that baseline and its change
  // was never reported. The pool is flooded here at the last log line before the watch begins.
  const dir = t.testdir({ 'gateway.yaml': good('one') });
  const configFile = join(dir, 'gateway.yaml');
  const busy: Promise<unknown>[] = [];
  const logs = new Proxy([] as string[], {
    get(target, prop, receiver) {
      if (prop === 'push') {
        return (...lines: string[]) => {
          if (busy.length === 0 && lines.some((l) => l.includes('listening (HTTP)'))) {
            for (let i = 0; i < 8; i++) busy.push(pbkdf2P('x', 'salt', 300_000, 32, 'sha256'));
          }
          return target.push(...lines);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  const gw = await Gateway.start({ configFile, log: captureLogger(logs) });
  t.teardown(() => gw.close());
  writeFileSync(configFile, good('changed'));
  t.equal(busy.length, 8, 'the pool was busy as the watch began');
  await Promise.all(busy);
  const url = `http://127.0.0.1:${gw.addresses.http!.port}/hello`;
  t.ok(await until(async () => (await text(url)) === 'changed', 5_000), 'the change is picked up');
});

t.test('SIGHUP reloads a running `gatehouse start`', async (t) => {
  const dir = t.testdir({ 'gateway.yaml': good('before') });
  const file = join(dir, 'gateway.yaml');
  const p = spawnCli(t, ['start', '-c', file]);
  const m = await p.waitFor(LISTENING_HTTP);
  const url = `http://127.0.0.1:${m[1]}/hello`;
  t.equal(await text(url), 'before');

  writeFileSync(file, unknownKey);
  p.child.kill('SIGHUP');
  await p.waitFor(/configuration reload refused/);
  t.match(p.stdout(), /gateway\.yaml:6:\d+/, 'the error names its line');
  t.equal(await text(url), 'before', 'still serving the old routes');

  writeFileSync(file, good('after', `127.0.0.1:${m[1]}`));
  p.child.kill('SIGHUP');
  await p.waitFor(/"trigger":"SIGHUP"[^\n]*configuration reloaded|configuration reloaded[^\n]*"trigger":"SIGHUP"/);
  t.equal(await text(url), 'after');

  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
});
