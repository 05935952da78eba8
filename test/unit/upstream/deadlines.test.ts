import t from 'tap';
import { DeadlineQueue } from '../../../src/upstream/deadlines.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exchange(log: string[], name: string) {
  return { expired: () => log.push(name) };
}

t.test('an exchange still under way at its deadline expires; finished ones never do', async (t) => {
  const q = new DeadlineQueue(60);
  t.teardown(() => q.close());
  const expired: string[] = [];
  const a = q.add(exchange(expired, 'a'), performance.now());
  q.add(exchange(expired, 'b'), performance.now());
  const c = q.add(exchange(expired, 'c'), performance.now());
  q.remove(a);
  q.remove(c);
  t.equal(q.size, 1);
  await sleep(30);
  t.same(expired, [], 'nothing before the deadline');
  await sleep(80);
  t.same(expired, ['b'], 'only the one still under way');
  t.equal(q.size, 0);
});

t.test('the timer follows the oldest exchange still under way, however many finished before it', async (t) => {
  const q = new DeadlineQueue(80);
  t.teardown(() => q.close());
  const expired: string[] = [];
  const started = performance.now();
  // Thousands finish at once (past the compaction threshold), one stays.
  const tickets = Array.from({ length: 5000 }, (_, i) => q.add(exchange(expired, `x${i}`), performance.now()));
  await sleep(40);
  const lateStart = performance.now();
  q.add(exchange(expired, 'late'), lateStart);
  for (const tk of tickets) q.remove(tk);
  // The first deadline passes with nothing due: the queue re-arms for "late".
  await sleep(60);
  t.same(expired, [], 'the finished ones did not expire');
  while (expired.length === 0 && performance.now() - started < 2000) await sleep(5);
  const at = performance.now() - lateStart;
  t.same(expired, ['late']);
  t.ok(at >= 79, `expired ${at.toFixed(1)} ms after it started, not before its 80 ms`);
  // Tickets issued after compaction still remove the right entry.
  const after = q.add(exchange(expired, 'after'), performance.now());
  q.remove(after);
  t.equal(q.size, 0);
  await sleep(120);
  t.same(expired, ['late'], 'a removed exchange added after compaction does not expire');
});

t.test('one exchange that throws on expiry does not stop the others', async (t) => {
  const q = new DeadlineQueue(20);
  t.teardown(() => q.close());
  const expired: string[] = [];
  q.add({ expired: () => { throw new Error('boom'); } }, performance.now());
  q.add(exchange(expired, 'next'), performance.now());
  await sleep(80);
  t.same(expired, ['next']);
});

t.test('close() stops the timer: nothing expires after it', async (t) => {
  const q = new DeadlineQueue(20);
  const expired: string[] = [];
  q.add(exchange(expired, 'a'), performance.now());
  q.close();
  await sleep(60);
  t.same(expired, []);
});

t.test('under steady load the queue holds about the exchanges under way, not a timeout of requests', async (t) => {
  // 30 s timeout: before, every request of those 30 s stayed in the arrays until the timer ran.
  const q = new DeadlineQueue(30_000);
  t.teardown(() => q.close());
  const expired: string[] = [];
  const inFlight: number[] = [];
  let most = 0;
  for (let i = 0; i < 50_000; i++) {
    inFlight.push(q.add(exchange(expired, `r${i}`), performance.now()));
    // 50 under way; they finish a little out of order, as responses do.
    if (inFlight.length > 50) q.remove(inFlight.splice(i % 3, 1)[0]!);
    most = Math.max(most, q.held);
  }
  t.equal(q.size, 50);
  t.ok(most < 5_000, `held at most ${most} entries for 50 exchanges under way (50 000 requests)`);
  for (const tk of inFlight) q.remove(tk);
  t.equal(q.size, 0);
  t.equal(q.held, 0, 'nothing held once all have finished');
  t.same(expired, []);
});

t.test('one slow exchange at the head: those behind it finish, and it still expires on time', async (t) => {
  const q = new DeadlineQueue(60);
  t.teardown(() => q.close());
  const expired: string[] = [];
  const start = performance.now();
  q.add(exchange(expired, 'slow'), start);
  for (let i = 0; i < 6000; i++) q.remove(q.add(exchange(expired, `fast${i}`), performance.now()));
  t.equal(q.size, 1);
  while (expired.length === 0 && performance.now() - start < 2000) await sleep(5);
  t.same(expired, ['slow']);
  t.ok(performance.now() - start >= 59, 'not before its deadline');
  t.equal(q.held, 0);
});
