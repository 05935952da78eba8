/**
 * Service-account tokens (DESIGN.md §3):
 *
 *     <prefix>_<key id>_<secret><checksum>      e.g. gth_4fQk2Lx9aZ0b_…43 chars…Xy12Ab
 *
 * - key id: 12 base62 characters (~71 bits), the O(1) lookup key in the store;
 * - secret: 32 random bytes (256 bits) as exactly 43 base62 characters;
 * - checksum: CRC32 of everything before it, as 6 base62 characters, so that
 *   a mistyped or forged-shape token is refused without touching the store
 *   and secret scanners can recognise a leaked one (the GitHub token scheme).
 *
 * Only SHA-256 of the secret is ever stored; it is compared in constant time.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as zlib from 'node:zlib';
import { sha256 } from '../util/sha256.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const KEY_ID_LENGTH = 12;
export const SECRET_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;

/** Big-endian bytes → fixed-width base62 (left-padded with "0"). */
export function base62(bytes: Uint8Array, width: number): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let out = '';
  while (n > 0n) {
    out = ALPHABET[Number(n % 62n)] + out;
    n /= 62n;
  }
  if (out.length > width) throw new RangeError(`value does not fit in ${width} base62 digits`);
  return out.padStart(width, '0');
}

/** Fixed-width base62 of an unsigned 32-bit number: base62() without BigInt, for the per-request checksum. */
function base62Uint32(n: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

let CRC_TABLE: Uint32Array | undefined;
const nativeCrc32 = (zlib as { crc32?: (data: string) => number }).crc32;

/** CRC-32 (IEEE 802.3), as in zlib: zlib.crc32 only exists from Node 20.15 (used when there). */
export function crc32(text: string): number {
  return nativeCrc32 ? nativeCrc32(text) : crc32Js(text);
}

export function crc32Js(text: string): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[i] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of Buffer.from(text, 'utf8')) crc = (CRC_TABLE[(crc ^ b) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function checksum(body: string): string {
  // 62^6 > 2^32: six digits always hold a CRC-32.
  return base62Uint32(crc32(body), CHECKSUM_LENGTH);
}

/** A fresh random key id. */
export function newKeyId(): string {
  // 70 random bits: 2^70 < 62^12 (≈ 2^71.45), so it always fits in 12 digits.
  const bytes = randomBytes(9);
  bytes[0] = (bytes[0] as number) & 0x3f;
  return base62(bytes, KEY_ID_LENGTH);
}

export interface IssuedToken {
  /** The full token: shown once, never stored. */
  token: string;
  keyId: string;
  /** SHA-256 of the secret, hex: what the store keeps. */
  hash: string;
}

/** Hex SHA-256 of a token secret. */
export function hashSecret(secret: string): string {
  return sha256(secret, 'hex');
}

/** Issues a new token under `prefix` with the given key id (fresh when omitted). */
export function issueToken(prefix: string, keyId: string = newKeyId()): IssuedToken {
  const secret = base62(randomBytes(32), SECRET_LENGTH);
  const body = `${prefix}_${keyId}_${secret}`;
  return { token: body + checksum(body), keyId, hash: hashSecret(secret) };
}

export type ParsedToken = { ok: true; keyId: string; secret: string } | { ok: false; problem: string };

/** The value of a base62 digit, or -1. */
function digit62(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 90) return c - 55; // A-Z
  if (c >= 97 && c <= 122) return c - 61; // a-z
  return -1;
}

/** True when text[from, to) is all base62 digits. */
function isBase62(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (digit62(text.charCodeAt(i)) === -1) return false;
  return true;
}

/** The number a run of base62 digits stands for (digits already checked). */
function base62Value(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 62 + digit62(text.charCodeAt(i));
  return n;
}

/**
 * The key id and secret of a token of `<prefix>_<key id>_<secret><checksum>`
 * length and separators, with no check of its digits or checksum: for a
 * lookup that then compares the secret's hash, which only an issued token
 * (base62, checksum right) can match. Undefined when the token cannot be
 * split; parseToken() then says what is wrong with it.
 */
export function tokenParts(prefix: string, token: string): { keyId: string; secret: string } | undefined {
  const head = prefix.length + 1;
  const secretAt = head + KEY_ID_LENGTH + 1;
  if (token.length !== secretAt + SECRET_LENGTH + CHECKSUM_LENGTH || token.charCodeAt(head - 1) !== 0x5f || token.charCodeAt(secretAt - 1) !== 0x5f || !token.startsWith(prefix)) return undefined;
  return { keyId: token.slice(head, secretAt - 1), secret: token.slice(secretAt, secretAt + SECRET_LENGTH) };
}

/**
 * Splits a token that starts with `<prefix>_`; checks shape, digits and
 * checksum (no store access). The problem text never contains the token.
 */
export function parseToken(prefix: string, token: string): ParsedToken {
  const head = prefix.length + 1;
  const expected = head + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH;
  if (token.length !== expected) return { ok: false, problem: `token has ${token.length} characters, expected ${expected}` };
  const parts = tokenParts(prefix, token);
  if (!parts) return { ok: false, problem: 'token does not have the <prefix>_<key id>_<secret> shape' };
  const secretAt = head + KEY_ID_LENGTH + 1;
  const sumAt = secretAt + SECRET_LENGTH;
  if (!isBase62(token, head, secretAt - 1) || !isBase62(token, secretAt, expected)) return { ok: false, problem: 'token has characters outside base62' };
  // The checksum's digits as a number (62^6 > 2^32), compared with the CRC: no string built.
  if (crc32(token.slice(0, sumAt)) !== base62Value(token, sumAt, expected)) return { ok: false, problem: 'token checksum does not match (mistyped or truncated)' };
  return { ok: true, ...parts };
}

/** Constant-time comparison of a presented secret against a stored hex hash (its bytes, or the hex text). */
export function secretMatches(secret: string, storedHash: Buffer | string): boolean {
  // Hex digests compared as bytes: crypto.hash() returns hex in well under half the time of a Buffer.
  const a = Buffer.from(sha256(secret, 'hex'), 'latin1');
  const b = typeof storedHash === 'string' ? Buffer.from(storedHash, 'latin1') : storedHash;
  return a.length === b.length && timingSafeEqual(a, b);
}
