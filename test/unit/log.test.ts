import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const LOG_JS = join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), 'dist', 'log.js');

t.test('the stdout logger writes every line, in order, before the process ends, and registers one exit listener', async (t) => {
  const script = `
    const m = await import(${JSON.stringify(LOG_JS)});
    const before = process.listenerCount('exit');
    const log = m.createLogger({ level: 'info' });
    for (let i = 0; i < 30; i++) m.createLogger({ level: 'silent' });
    const lines = new m.LineBatch(log);
    for (let i = 0; i < 1000; i++) lines.push(JSON.stringify({ time: 't', n: i }));
    lines.flush();
    log.info('last words');
    console.error('exit listeners added: ' + (process.listenerCount('exit') - before));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 0, r.stderr);
  const out = r.stdout.trimEnd().split('\n');
  t.equal(out.length, 1001, 'every line');
  t.same(JSON.parse(out[999]!), { level: 'info', service: 'gatehouse', msg: 'request', time: 't', n: 999 });
  t.match(JSON.parse(out[1000]!), { level: 'info', msg: 'last words' });
  t.match(r.stderr, /exit listeners added: 1\b/, 'one listener for 31 loggers');
});
