/**
 * Request ids: RFC 9562 UUIDv7 — the millisecond first, so that ids sort by
 * time — made cheaply (issue 6: randomUUID() built each id from 20 string
 * pieces, ~500 bytes of garbage a request). Per millisecond one random
 * head is drawn; the ids of that millisecond are the head and a 16-bit
 * counter in the last four hex digits. 58 random bits per millisecond keep
 * ids of different processes apart.
 */
import { randomFillSync } from 'node:crypto';

const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const pool = Buffer.alloc(4096);
let poolOff = pool.length;

function randomHex(bytes: number): string {
  if (poolOff + bytes > pool.length) {
    randomFillSync(pool);
    poolOff = 0;
  }
  const s = pool.toString('hex', poolOff, poolOff + bytes);
  poolOff += bytes;
  return s;
}

let lastMs = -1;
let head = '';
let counter = 0;

/**
 * `ms` (0 ≤ ms < 2^48) as 12 hex digits, byte by byte from the table:
 * Number#toString(16) takes V8's floating-point path (an fmod a digit) for
 * numbers past 2^31, which every millisecond since 1970-01-25 is.
 */
function hex48(ms: number): string {
  const hi = Math.floor(ms / 0x1000000);
  const lo = ms - hi * 0x1000000;
  return (
    (HEX2[(hi >>> 16) & 0xff] as string) +
    (HEX2[(hi >>> 8) & 0xff] as string) +
    (HEX2[hi & 0xff] as string) +
    (HEX2[lo >>> 16] as string) +
    (HEX2[(lo >>> 8) & 0xff] as string) +
    (HEX2[lo & 0xff] as string)
  );
}

/** `tttttttt-tttt-7rrr-vrrr-rrrrrrrr` for `ms`, with fresh random bits (v: the variant, 8–b). */
function newHead(ms: number): string {
  const t = hex48(ms);
  const r = randomHex(8);
  const variant = '89ab'[parseInt(r[3] as string, 16) & 3] as string;
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${r.slice(0, 3)}-${variant}${r.slice(4, 7)}-${r.slice(7, 15)}`;
}

/** A fresh UUIDv7 string (lower-case hex, 36 characters). */
export function requestId(now: number = Date.now()): string {
  if (now !== lastMs || counter > 0xffff) {
    lastMs = now;
    head = newHead(now);
    counter = 0;
  }
  const c = counter++;
  return head + (HEX2[c >>> 8] as string) + (HEX2[c & 0xff] as string);
}
