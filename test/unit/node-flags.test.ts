import { readFileSync } from 'node:fs';
import t from 'tap';
import { PRODUCTION_NODE_FLAGS, youngGenerationPinned } from '../../src/cli/node-flags.js';

const file = (name: string) => readFileSync(new URL(`../../${name}`, import.meta.url), 'utf8');

t.test('the young generation counts as pinned in every spelling V8 accepts, and only then', async (t) => {
  t.ok(youngGenerationPinned(['--min-semi-space-size=16']));
  t.ok(youngGenerationPinned(['--inspect', '--min_semi_space_size=32']));
  t.ok(youngGenerationPinned(['--min-semi-space-size', '16']));
  t.notOk(youngGenerationPinned([]));
  t.notOk(youngGenerationPinned(['--max-semi-space-size=16']), 'the maximum does not stop the shrinking');
  t.notOk(youngGenerationPinned(['--min-semi-space-sizes=16']));
});

t.test('the shipped launch lines carry the production flags', async (t) => {
  const flags = PRODUCTION_NODE_FLAGS.join(' ');
  const scripts = (JSON.parse(file('package.json')) as { scripts: Record<string, string> }).scripts;
  t.equal(scripts.start, `node ${flags} dist/demo/start.js`, 'npm start');
  t.equal(scripts.gatehouse, `node ${flags} dist/cli/bin.js`, 'npm run gatehouse');
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(file('Dockerfile'))?.[1];
  t.same(JSON.parse(entrypoint ?? '[]'), ['node', ...PRODUCTION_NODE_FLAGS, '/app/dist/cli/bin.js'], 'the Docker image');
});
