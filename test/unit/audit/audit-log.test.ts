import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { AuditLog } from '../../../src/audit/audit-log.js';
import { appendAuditEvents, eventBody } from '../../../src/audit/append.js';
import { readHead, verifyText } from '../../../src/audit/chain.js';
import { lockPath, withLock } from '../../../src/audit/lock.js';
import { cut, isoTime, MAX_FIELD } from '../../../src/audit/record.js';
import { captureLogger } from '../../helpers/gateway.js';

t.test('AuditLog buffers, flushes on its interval and on close, and keeps one chain', async (t) => {
  const file = join(t.testdir(), 'sub/audit.log');
  const a = await AuditLog.open({ file, flushInterval: 20, log: captureLogger([]) });
  a.append('{"n":1}');
  a.event('config.reloaded', { reason: 'reloaded' });
  t.equal(a.pending, 2);
  await new Promise((r) => setTimeout(r, 80));
  t.equal(a.pending, 0, 'flushed by the timer');
  a.append('{"n":3}');
  await a.close();
  const text = readFileSync(file, 'utf8');
  t.equal(text.trim().split('\n').length, 3);
  t.same(verifyText(text, { head: readHead(file) }), { ok: true, records: 3 });
  t.notOk(existsSync(lockPath(file)), 'lock released');
});

t.test('a large batch is chained in slices while requests go on: every record once, in order, one valid chain', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const a = await AuditLog.open({ file, flushInterval: 60_000, log: captureLogger([]) });
  const body = (n: number) => JSON.stringify({ n, pad: 'x'.repeat(400) });
  // Past the flush threshold (about 1 MB): a flush starts on its own and chains a slice at a time.
  let n = 0;
  while (n < 3000) a.append(body(n++));
  // Records arriving while that flush yields between slices wait for the next one.
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setImmediate(r));
    a.append(body(n++));
  }
  await a.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.length, n, 'every record written once');
  t.same(lines.map((l) => (JSON.parse(l) as { n: number }).n), [...Array(n).keys()], 'in the order they came');
  t.same(verifyText(lines.join('\n') + '\n', { head: readHead(file) }), { ok: true, records: n });
});

t.test('"-" writes the chained lines to stdout', async (t) => {
  let out = '';
  const stdout = new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) });
  const a = await AuditLog.open({ file: '-', flushInterval: 1000, log: captureLogger([]), stdout });
  a.append('{"n":1}');
  a.append('{"n":2}');
  await a.close();
  t.equal(verifyText(out).ok, true);
  t.equal(out.trim().split('\n').length, 2);
});

t.test('"-" reuses a batch\'s memory once stdout has written it, and not before', async (t) => {
  // A slow stdout: each write completes 30 ms later, and what it was handed is read only then.
  const held: Buffer[] = [];
  let out = '';
  const slow = new Writable({ write: (c: Buffer, _e, cb) => (held.push(c), setTimeout(() => ((out += c.toString()), cb()), 30)) });
  const a = await AuditLog.open({ file: '-', flushInterval: 60_000, log: captureLogger([]), stdout: slow });
  const body = (n: number) => JSON.stringify({ n, pad: 'y'.repeat(300) });
  a.append(body(1));
  await a.flush();
  // The first batch is still being written: the second must not be built in its memory.
  a.append(body(2));
  await a.flush();
  await new Promise((r) => setTimeout(r, 100));
  a.append(body(3));
  await a.close();
  await new Promise((r) => setTimeout(r, 100));
  t.same(out.trim().split('\n').map((l) => (JSON.parse(l) as { n: number }).n), [1, 2, 3], 'every line as written, none overwritten by a later batch');
  t.equal(verifyText(out).ok, true, 'one valid chain');
  t.not(held[1]!.buffer, held[0]!.buffer, 'a batch built while the one before was in a write got memory of its own');
  t.ok([held[0]!.buffer, held[1]!.buffer].includes(held[2]!.buffer), 'once written, a batch\'s memory was reused (no fresh pages for every batch)');
});

t.test('appendAuditEvents() continues a file written by the gateway and the gateway continues after it', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const a = await AuditLog.open({ file, flushInterval: 10_000, log: captureLogger([]) });
  a.append('{"n":1}');
  await a.flush();
  await appendAuditEvents(file, [{ event: 'account.created', account: 'robot', key_id: 'k1' }]);
  a.append('{"n":2}');
  await a.close();
  const text = readFileSync(file, 'utf8');
  t.same(verifyText(text, { head: readHead(file) }), { ok: true, records: 3 });
  const ev = JSON.parse(text.split('\n')[1]!) as { event: string; principal: { kind: string } };
  t.equal(ev.event, 'account.created');
  t.equal(ev.principal.kind, 'operator');
  t.match(eventBody({ event: 'token.revoked', account: 'x' }), /^\{"time":"[^"]+","request_id":null,"event":"token.revoked"/);
});

t.test('records buffered while another writer appends are chained after its lines', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const a = await AuditLog.open({ file, flushInterval: 10_000, log: captureLogger([]) });
  a.append('{"n":1}');
  await a.flush();
  a.append('{"n":2}');
  a.append('{"n":3}');
  // The CLI writes while two records wait, chained on the gateway's last line.
  await appendAuditEvents(file, [{ event: 'token.revoked', account: 'robot', key_id: 'k1' }]);
  const flushing = a.flush();
  // Appended while that write is under way: they must follow the re-chained lines.
  a.append('{"n":4}');
  await flushing;
  a.append('{"n":5}');
  await a.close();
  const text = readFileSync(file, 'utf8');
  t.same(verifyText(text, { head: readHead(file) }), { ok: true, records: 6 });
  t.same(
    text.trim().split('\n').map((l) => (JSON.parse(l) as { n?: number; event?: string }).n ?? (JSON.parse(l) as { event: string }).event),
    [1, 'token.revoked', 2, 3, 4, 5],
    'every record once, in order',
  );
});

t.test('a new file (audit.file changed on reload) starts its own chain with the records that waited', async (t) => {
  const dir = t.testdir();
  const a = await AuditLog.open({ file: join(dir, 'one.log'), flushInterval: 10_000, log: captureLogger([]) });
  a.append('{"n":1}');
  await a.flush();
  a.append('{"n":2}');
  await a.configure({ file: join(dir, 'two.log'), flushInterval: 10_000, maxSize: undefined });
  a.append('{"n":3}');
  await a.close();
  t.same(verifyText(readFileSync(join(dir, 'one.log'), 'utf8')), { ok: true, records: 2 });
  const two = readFileSync(join(dir, 'two.log'), 'utf8');
  t.same(verifyText(two, { head: readHead(join(dir, 'two.log')) }), { ok: true, records: 1 });
  t.equal((JSON.parse(two) as { prev: string }).prev, '0'.repeat(64), 'from the genesis hash');
});

t.test('a write failure is counted once per record, reported, and retried', async (t) => {
  const dir = t.testdir({ blocker: 'file' });
  const logs: string[] = [];
  let failed = 0;
  const a = await AuditLog.open({ file: join(dir, 'blocker/audit.log'), flushInterval: 10_000, log: captureLogger(logs), onWriteFailure: (n) => (failed += n) });
  t.equal(a.failing, true);
  a.append('{"n":1}');
  await a.flush();
  await a.flush();
  t.equal(failed, 1, 'counted once although retried');
  t.equal(a.pending, 1, 'kept for a retry');
  t.equal(logs.filter((l) => l.includes('AUDIT LOG CANNOT BE WRITTEN')).length, 1, 'loud once, not per retry');
  await a.close();
  t.ok(logs.some((l) => l.includes('AUDIT RECORDS LOST')));
});

t.test('appendAuditEvents() waits for a held lock without blocking the event loop', async (t) => {
  // A gateway in the same process (the admin tooling, the tests) holds the lock across awaits while it
  // flushes: a synchronous wait blocked it from releasing, until the lock went stale 10 s later.
  const file = join(t.testdir(), 'audit.log');
  let released = false;
  const holder = withLock(file, async () => {
    await new Promise((r) => setTimeout(r, 300));
    released = true;
  });
  await new Promise((r) => setTimeout(r, 10));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 20);
  await appendAuditEvents(file, [{ event: 'account.created', account: 'robot', key_id: 'k1' }]);
  clearInterval(timer);
  await holder;
  t.ok(released, 'written once the holder released the lock');
  t.ok(ticks >= 5, `the event loop ran meanwhile (${ticks} ticks of 20 ms)`);
  t.equal(verifyText(readFileSync(file, 'utf8')).ok, true);
});

t.test('locks: a stale lock is broken, a held one waits', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  writeFileSync(lockPath(file), '999999\n');
  const { utimesSync } = await import('node:fs');
  utimesSync(lockPath(file), new Date(0), new Date(0));
  t.equal(await withLock(file, async () => 2), 2, 'stale lock broken');
  // A fresh lock whose owner process is gone (a gateway killed mid-flush) is broken at once, not after STALE_MS.
  writeFileSync(lockPath(file), JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), time: new Date().toISOString() }));
  const started = Date.now();
  t.equal(await withLock(file, async () => 3), 3);
  t.ok(Date.now() - started < 1000, `a dead owner's lock is broken at once (${Date.now() - started} ms)`);
  // A live owner's lock is waited for, however fresh or old its file looks within STALE_MS.
  writeFileSync(lockPath(file), JSON.stringify({ pid: process.ppid, host: hostname(), time: new Date().toISOString() }));
  let done = false;
  const waiting = withLock(file, async () => (done = true));
  await new Promise((r) => setTimeout(r, 150));
  t.notOk(done, 'waits while the owner lives');
  (await import('node:fs')).unlinkSync(lockPath(file));
  await waiting;
  t.ok(done);
  let order = '';
  await Promise.all([withLock(file, async () => { order += 'a'; await new Promise((r) => setTimeout(r, 30)); order += 'A'; }), withLock(file, async () => { order += 'b'; order += 'B'; })]);
  t.ok(order === 'aAbB' || order === 'bBaA', `serialized: ${order}`);
});

t.test('cut() keeps 1 kB and marks the rest', async (t) => {
  t.equal(cut('short'), 'short');
  const c = cut('z'.repeat(MAX_FIELD + 10));
  t.equal(c.length, MAX_FIELD + '…[cut]'.length);
  t.ok(c.endsWith('…[cut]'));
});

t.test('isoTime() is toISOString(), also when the same millisecond comes again or time goes back', async (t) => {
  const base = Date.parse('2026-11-23T23:59:59.998Z');
  for (const ms of [base, base, base + 1, base + 2, base + 2, base - 5000, base]) t.equal(isoTime(ms), new Date(ms).toISOString());
});
