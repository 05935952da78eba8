import { openSync, closeSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { chain, ChainBatch, GENESIS, hashLine, lastLineAsync, lastLineSync, tailHashSync, verifyText, withPrev } from '../../../src/audit/chain.js';

/** chain()'s bytes as text. */
function chainText(bodies: string[], prev: string): { text: string; last: string } {
  const { buf, last } = chain(bodies, prev);
  return { text: buf.toString('utf8'), last };
}

t.test('chain() links each line to the SHA-256 of the previous line', async (t) => {
  const { text, last } = chainText(['{"a":1}', '{"b":2}', '{}'], GENESIS);
  const lines = text.trimEnd().split('\n');
  t.equal(JSON.parse(lines[0]!).prev, GENESIS);
  t.equal(JSON.parse(lines[1]!).prev, hashLine(lines[0]!));
  t.equal(JSON.parse(lines[2]!).prev, hashLine(lines[1]!));
  t.equal(lines[2], `{"prev":"${hashLine(lines[1]!)}"}`);
  t.equal(last, hashLine(lines[2]!));
  t.equal(withPrev('{"x":1}', 'p'), '{"x":1,"prev":"p"}');
  t.same(verifyText(text), { ok: true, records: 3 });
  t.same(verifyText(''), { ok: true, records: 0 });
});

t.test('chain() encodes each line into place: exact bytes, also beyond ASCII', async (t) => {
  const bodies = ['{"a":1}', '{}', '{"ua":"Mozilla/5.0 (ü) 𝄞"}'];
  const { buf, last } = chain(bodies, GENESIS);
  let expected = '';
  let prev = GENESIS;
  for (const b of bodies) {
    const line = withPrev(b, prev);
    prev = hashLine(line);
    expected += line + '\n';
  }
  t.same(buf, Buffer.from(expected, 'utf8'), 'the lines as UTF-8, nothing more');
  t.equal(last, prev);
  t.equal(chain([], GENESIS).buf.length, 0);
  t.equal(chain([], 'p').last, 'p');
});

t.test('verifyText() names the first broken line', async (t) => {
  const { text, last } = chainText(['{"a":1}', '{"a":2}', '{"a":3}', '{"a":4}'], GENESIS);
  const lines = text.trimEnd().split('\n');
  const head = { hash: last, size: Buffer.byteLength(text) };
  t.equal(verifyText(text, { head }).ok, true);
  const edit = [...lines];
  edit[1] = edit[1]!.replace('"a":2', '"a":5');
  t.match(verifyText(edit.join('\n') + '\n'), { ok: false, line: 3 });
  t.match(verifyText([lines[0], lines[2], lines[3]].join('\n') + '\n'), { ok: false, line: 2 });
  t.match(verifyText(lines.slice(1).join('\n') + '\n'), { ok: false, line: 1 });
  t.match(verifyText(lines.slice(0, 3).join('\n') + '\n', { head }), { ok: false, line: 3, message: /removed/ });
  const lastEdit = [...lines];
  lastEdit[3] = lastEdit[3]!.replace('"a":4', '"a":7');
  t.match(verifyText(lastEdit.join('\n') + '\n', { head }), { ok: false, line: 4 });
  t.match(verifyText('{"a":1}\n'), { ok: false, line: 1, message: /no "prev"/ });
  t.match(verifyText('not json\n'), { ok: false, line: 1 });
  // A head left behind by a crash between the write and the head update still verifies.
  t.equal(verifyText(text, { head: { hash: hashLine(lines[2]!), size: Buffer.byteLength(lines.slice(0, 3).join('\n') + '\n') } }).ok, true);
});

t.test('the last line is found across read chunks, with or without a final newline', async (t) => {
  const dir = t.testdir();
  const long = 'x'.repeat(200_000);
  for (const [name, content, want] of [
    ['a', `one\ntwo\n`, 'two'],
    ['b', `one\ntwo`, 'two'],
    ['c', `only\n`, 'only'],
    ['d', `${long}\n${long}y\n`, `${long}y`],
    ['e', ``, undefined],
  ] as const) {
    const f = join(dir, name);
    writeFileSync(f, content);
    const fd = openSync(f, 'r');
    t.equal(lastLineSync(fd, Buffer.byteLength(content)), want, `${name} sync`);
    closeSync(fd);
    const fh = await open(f, 'r');
    t.equal(await lastLineAsync(fh, Buffer.byteLength(content)), want, `${name} async`);
    await fh.close();
  }
  t.same(tailHashSync(join(dir, 'a')), { prev: hashLine('two'), size: 8 });
  t.same(tailHashSync(join(dir, 'missing')), { prev: GENESIS, size: 0 });
});

/** The reference: withPrev() and hashLine() line by line, as strings. */
function reference(bodies: string[], prev: string): { text: string; last: string } {
  let text = '';
  for (const b of bodies) {
    const line = withPrev(b, prev);
    prev = hashLine(line);
    text += line + '\n';
  }
  return { text, last: prev };
}

const joined = (parts: Buffer[]) => Buffer.concat(parts).toString('utf8');

/** The batch, linked after GENESIS, is exactly the reference lines of `kept`: text, last hash and byte count. */
function holdsExactly(t: Test, batch: ChainBatch, kept: string[]): void {
  t.equal(batch.count, kept.length);
  const last = batch.link(GENESIS);
  const ref = reference(kept, GENESIS);
  t.equal(joined(batch.parts()), ref.text);
  t.equal(last, ref.last);
  t.equal(batch.bytes, Buffer.byteLength(ref.text));
}

t.test('ChainBatch: staged lines linked in pieces are the reference lines, across chunks and beyond ASCII', async (t) => {
  const bodies = Array.from({ length: 300 }, (_, i) => JSON.stringify({ n: i, ua: i % 7 ? 'curl/8' : 'Mozilla/5.0 (ü) 𝄞' }));
  bodies.push(JSON.stringify({ big: 'x'.repeat(100_000) }), '{}', '{"after":"big"}');
  const batch = new ChainBatch();
  for (const b of bodies) batch.add(b);
  t.equal(batch.count, bodies.length);
  let last = batch.link('p'.repeat(64), 0, 128);
  last = batch.link(last, 128, 256);
  last = batch.link(last, 256);
  const ref = reference(bodies, 'p'.repeat(64));
  t.equal(joined(batch.parts()), ref.text);
  t.equal(last, ref.last);
  t.equal(batch.bytes, Buffer.byteLength(ref.text), 'bytes counts every line and newline');
  t.ok(batch.parts().length > 1, 'spread over several chunks');
  // Linked again after another prev (a retry after another writer appended): the holes are rewritten.
  t.equal(joined((batch.link(GENESIS), batch.parts())), reference(bodies, GENESIS).text);
});

t.test('ChainBatch: dropped records are gone; a failed batch takes back the newer records behind its own', async (t) => {
  const old = Array.from({ length: 200 }, (_, i) => JSON.stringify({ old: i, pad: 'y'.repeat(500) }));
  const batch = new ChainBatch();
  for (const b of old) batch.add(b);
  for (let i = 0; i < 150; i++) batch.dropOldest();
  const newer = new ChainBatch();
  newer.add('{"new":1}');
  newer.add('{"new":2}');
  batch.append(newer);
  t.equal(newer.count, 0, 'the newer batch is emptied');
  t.equal(newer.bytes, 0);
  holdsExactly(t, batch, [...old.slice(150), '{"new":1}', '{"new":2}']);
  // Dropping everything leaves nothing to write.
  while (batch.count) batch.dropOldest();
  t.same(batch.parts(), []);
  t.equal(batch.bytes, 0);
  batch.add('{"again":true}');
  t.equal(joined((batch.link(GENESIS), batch.parts())), reference(['{"again":true}'], GENESIS).text);
});

t.test('ChainBatch: a written batch gives its memory back; the next batch in it holds only its own lines', async (t) => {
  const first = new ChainBatch();
  for (let i = 0; i < 500; i++) first.add(JSON.stringify({ first: i, pad: 'z'.repeat(300) }));
  first.link(GENESIS);
  first.release();
  t.equal(first.count, 0);
  t.same(first.parts(), []);
  const next = new ChainBatch();
  const bodies = Array.from({ length: 200 }, (_, i) => JSON.stringify({ next: i }));
  for (const b of bodies) next.add(b);
  const last = next.link(GENESIS);
  const ref = reference(bodies, GENESIS);
  t.equal(joined(next.parts()), ref.text, 'no byte of the earlier batch shows through');
  t.equal(last, ref.last);
});

t.test('ChainBatch: thousands of records (a busy flush interval) and a failed batch taking back thousands more stay in order', async (t) => {
  const old = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ old: i, pad: 'q'.repeat(i % 50) }));
  const batch = new ChainBatch();
  for (const b of old) batch.add(b);
  for (let i = 0; i < 700; i++) batch.dropOldest();
  const newer = new ChainBatch();
  const fresh = Array.from({ length: 1800 }, (_, i) => JSON.stringify({ fresh: i }));
  for (const b of fresh) newer.add(b);
  batch.append(newer);
  holdsExactly(t, batch, [...old.slice(700), ...fresh]);
});

t.test('ChainBatch: a batch done with hands its memory on; batches made after it hold only their own lines', async (t) => {
  const done = new ChainBatch();
  for (let i = 0; i < 3000; i++) done.add(JSON.stringify({ done: i }));
  done.link(GENESIS);
  const written = joined(done.parts());
  done.release();
  done.dispose();
  t.equal(done.count, 0);
  t.same(done.parts(), []);
  for (let round = 0; round < 3; round++) {
    const next = new ChainBatch();
    const bodies = Array.from({ length: 10 + round }, (_, i) => JSON.stringify({ round, i }));
    for (const b of bodies) next.add(b);
    const last = next.link(GENESIS);
    const ref = reference(bodies, GENESIS);
    t.equal(joined(next.parts()), ref.text, `round ${round}: no record of an earlier batch shows through`);
    t.equal(last, ref.last);
    next.release();
    next.dispose();
  }
  t.ok(written.split('\n').length > 3000, 'the first batch was whole');
});
