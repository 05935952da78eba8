/**
 * The Node flags a gateway runs with (src/cli/node-flags.ts): on every Node
 * line CI runs (this directory also runs on Node 22 and 24), node accepts
 * them and they pin the young generation; `gatehouse start` warns once when
 * they are missing and stays quiet when they are given.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { PRODUCTION_NODE_FLAGS } from '../../src/cli/node-flags.js';
import type { Tap } from '../helpers/gateway.js';
import { LISTENING_HTTP, spawnCli } from '../helpers/spawn.js';
import { startUpstream } from '../helpers/upstream.js';

const MIB = 1024 * 1024;

t.test('node accepts the production flags and starts with its young generation at 16 MB a semi-space', async (t) => {
  const size = (flags: readonly string[]) => {
    const r = spawnSync(process.execPath, [...flags, '-p', "require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size"], { encoding: 'utf8' });
    t.equal(r.status, 0, `node ${flags.join(' ')} starts (${r.stderr.trim()})`);
    return Number(r.stdout.trim());
  };
  const pinned = size(PRODUCTION_NODE_FLAGS);
  t.ok(pinned >= 16 * MIB, `young generation at start with the flags: ${pinned / MIB} MiB`);
  const plain = size([]);
  t.ok(plain < pinned, `and smaller without them: ${plain / MIB} MiB`);
});

async function gatewayConfig(t: Tap): Promise<string> {
  const up = await startUpstream(t);
  const dir = t.testdir({
    'gateway.yaml': `
server: { listen: 127.0.0.1:0 }
upstreams: { app: { url: "${up.url}" } }
routes: [{ name: all, match: { path: /** }, upstream: app, public: true }]
`,
  });
  return join(dir, 'gateway.yaml');
}

t.test('gatehouse start without the flags: one warning that names them, and the gateway serves', async (t) => {
  const file = await gatewayConfig(t);
  const p = spawnCli(t, ['start', '-c', file]);
  const port = Number((await p.waitFor(LISTENING_HTTP))[1]);
  const [line] = await p.waitFor(/^.*min-semi-space-size.*$/m);
  const warning = JSON.parse(line) as { level: string; node_flags: string; msg: string };
  t.equal(warning.level, 'warn');
  t.equal(warning.node_flags, PRODUCTION_NODE_FLAGS.join(' '), 'the warning carries the flags to add');
  t.match(warning.msg, /without --min-semi-space-size/);
  t.equal((await fetch(`http://127.0.0.1:${port}/x`)).status, 200);
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
  t.equal(p.stdout().split('\n').filter((l) => l.includes('min-semi-space-size')).length, 1, 'warned once');
});

t.test('gatehouse start with the flags, as the Docker image and npm start run it: no warning', async (t) => {
  const file = await gatewayConfig(t);
  const p = spawnCli(t, ['start', '-c', file], {}, PRODUCTION_NODE_FLAGS);
  const port = Number((await p.waitFor(LISTENING_HTTP))[1]);
  t.equal((await fetch(`http://127.0.0.1:${port}/x`)).status, 200);
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
  t.match(p.stdout(), /"msg":"stopped"/);
  t.notMatch(p.stdout(), /min-semi-space-size/, 'nothing to warn about');
});
