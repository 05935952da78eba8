import t from 'tap';
import { requestId } from '../../../src/util/request-id.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const msOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

t.test('request ids are RFC 9562 UUIDv7 carrying their millisecond', async (t) => {
  const now = Date.now();
  const id = requestId(now);
  t.match(id, V7);
  t.equal(msOf(id), now);
  t.equal(msOf(requestId(0)), 0);
  t.equal(msOf(requestId(2 ** 48 - 1)), 2 ** 48 - 1, 'the last millisecond UUIDv7 can hold (year 10889)');
  // Every byte of the time, across the 24-bit halves it is written in.
  for (const ms of [1, 0xff, 0x100, 0xffffff, 0x1000000, 0x1000001, 2 ** 31, 2 ** 32 - 1, 2 ** 40 + 0xabcdef]) t.equal(msOf(requestId(ms)), ms, String(ms));
  for (let i = 0; i < 2000; i++) {
    const ms = Math.floor(Math.random() * 2 ** 48);
    if (msOf(requestId(ms)) !== ms) t.fail(`millisecond ${ms}`);
  }
});

t.test('ids are unique within one millisecond, past the 16-bit counter, and sort by time', async (t) => {
  const seen = new Set<string>();
  const ms = 1_800_000_000_000;
  for (let i = 0; i < 200_000; i++) seen.add(requestId(ms)); // three heads' worth in one millisecond
  t.equal(seen.size, 200_000);
  for (const id of [...seen].slice(0, 1000)) t.equal(msOf(id), ms);
  const later = requestId(ms + 1);
  t.ok([...seen].every((id) => id < later), 'an id of a later millisecond sorts after every earlier one');
  // Another millisecond draws fresh random bits: not the same head with a new time.
  const a = requestId(ms + 2);
  const b = requestId(ms + 3);
  t.not(a.slice(14, 32), b.slice(14, 32));
});
