/**
 * Path normalization (DESIGN.md §5, §10). The gateway matches routes on the
 * normalized path and forwards exactly that path, so that the upstream and
 * the rules always agree on what was asked for.
 */
import { GatewayError } from '../errors.js';

const HEX = '0123456789ABCDEF';
/** RFC 3986 unreserved characters: decoded when percent-encoded. */
const UNRESERVED = new Uint8Array(128);
/** Characters allowed raw in a path (pchar + "/"); anything else is encoded. */
const PCHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") PCHAR[c.charCodeAt(0)] = 1;
/** Escapes that are refused outright: / \ NUL ; % ? # (controls are checked separately). */
const FORBIDDEN_ESCAPES = new Set([0x2f, 0x5c, 0x00, 0x3b, 0x25, 0x3f, 0x23]);

const utf8 = new TextDecoder('utf-8', { fatal: true });

function bad(reason: string, message: string): GatewayError {
  return new GatewayError('GW_BAD_REQUEST', message, { reason });
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Normalizes a request path (without its query). Throws a 400 GatewayError
 * for encoded separators, control characters, invalid escapes or UTF-8, and
 * `..` that climbs above the root.
 */
export function normalizePath(raw: string): string {
  if (raw.charCodeAt(0) !== 47) throw bad('path_invalid', 'path does not start with "/"');
  // Fast path: only plain pchars and no dot segment or empty segment.
  let simple = true;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c >= 128 || PCHAR[c] !== 1) {
      simple = false;
      break;
    }
    if (c === 47 && i > 0 && raw.charCodeAt(i - 1) === 47) {
      simple = false;
      break;
    }
    if (c === 46 && raw.charCodeAt(i - 1) === 47) {
      const n = raw.charCodeAt(i + 1);
      if (Number.isNaN(n) || n === 47 || (n === 46 && (i + 2 === raw.length || raw.charCodeAt(i + 2) === 47))) {
        simple = false;
        break;
      }
    }
  }
  if (simple) return raw;

  // Slow path: decode unreserved escapes, upper-case the others, validate.
  let decoded = '';
  let highBytes: number[] = [];
  const flushHigh = () => {
    if (highBytes.length === 0) return;
    try {
      utf8.decode(new Uint8Array(highBytes));
    } catch {
      throw bad('path_invalid_utf8', 'percent-encoded bytes are not valid UTF-8');
    }
    for (const b of highBytes) decoded += '%' + HEX[b >> 4] + HEX[b & 15];
    highBytes = [];
  };
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37) {
      const h = hexValue(raw.charCodeAt(i + 1));
      const l = hexValue(raw.charCodeAt(i + 2));
      if (h < 0 || l < 0) throw bad('path_invalid_escape', 'invalid percent-escape in path');
      const b = (h << 4) | l;
      i += 2;
      if (b >= 0x80) {
        highBytes.push(b);
        continue;
      }
      flushHigh();
      if (b < 0x20 || b === 0x7f) throw bad('path_control_char', 'encoded control character in path');
      if (FORBIDDEN_ESCAPES.has(b)) throw bad('path_forbidden_escape', `forbidden percent-encoded character %${HEX[b >> 4]}${HEX[b & 15]} in path`);
      decoded += UNRESERVED[b] === 1 ? String.fromCharCode(b) : '%' + HEX[b >> 4] + HEX[b & 15];
      continue;
    }
    if (c >= 0x80) {
      // Node hands non-ASCII request-target bytes over as latin1 characters.
      if (c > 0xff) throw bad('path_invalid', 'invalid character in path');
      highBytes.push(c);
      continue;
    }
    flushHigh();
    if (c < 0x20 || c === 0x7f) throw bad('path_control_char', 'control character in path');
    if (c === 92) throw bad('path_backslash', 'backslash in path');
    decoded += PCHAR[c] === 1 ? raw[i] : '%' + HEX[c >> 4] + HEX[c & 15];
  }
  flushHigh();

  // Resolve dot segments and merge empty ones; keep a trailing slash.
  const parts = decoded.split('/');
  const out: string[] = [];
  const last = parts.length - 1;
  let trailing = false;
  for (let i = 1; i <= last; i++) {
    const seg = parts[i] as string;
    if (seg === '' || seg === '.') {
      trailing = i === last;
      continue;
    }
    if (seg === '..') {
      if (out.length === 0) throw bad('path_traversal', '".." climbs above the root');
      out.pop();
      trailing = i === last;
      continue;
    }
    out.push(seg);
    trailing = false;
  }
  const joined = '/' + out.join('/');
  return trailing && out.length > 0 ? joined + '/' : joined;
}

/** Splits a request target into path and query (the query keeps its "?", unchanged). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q === -1 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q) };
}
