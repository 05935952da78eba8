/**
 * Serializes a finished request into its audit record (DESIGN.md §7), without
 * `prev` (added when the record is chained). Never a token, a secret or a
 * header value other than User-Agent; the path without its query string.
 */
import type { Principal } from '../authn/authenticator.js';
import type { RequestContext } from '../pipeline/context.js';

/** Longest field value kept; longer ones are cut and marked (DESIGN.md §10). */
export const MAX_FIELD = 1024;
export const CUT_MARK = '…[cut]';

export function cut(value: string): string {
  return value.length > MAX_FIELD ? value.slice(0, MAX_FIELD) + CUT_MARK : value;
}

function cutOrNull(value: string | undefined): string | null {
  return value === undefined ? null : cut(value);
}

/** The request target without its query, for requests refused before normalization. */
function rawPath(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** "000" … "999". */
const MILLIS = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
let lastSecond = NaN;
/** `YYYY-MM-DDTHH:MM:SS.` of lastSecond. */
let secondPrefix = '';

/**
 * Epoch milliseconds as ISO 8601, toISOString() computed once per second:
 * under load the records that end together arrived in several different
 * milliseconds, and toISOString() was a third of the cost of serializing a
 * record (issue 6).
 */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    // Outside years 0000–9999 the prefix is not fixed-width.
    if (!(ms >= 0 && ms < 253402300800000)) return new Date(ms).toISOString();
    secondPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    lastSecond = second;
  }
  const millis = MILLIS[ms - second * 1000];
  // A fraction of a millisecond has no entry: toISOString() drops it.
  return millis === undefined ? new Date(ms).toISOString() : secondPrefix + millis + 'Z';
}

/**
 * The request's record, serialized once and shared by the audit log and the
 * per-request log line. Call only once the request has ended (observers).
 */
export function recordOf(ctx: RequestContext): string {
  return (ctx.record ??= requestRecord(ctx));
}

/** Characters JSON.stringify() escapes in a string (and surrogates, which it escapes when unpaired). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A JSON string literal, exactly as JSON.stringify() writes it; the usual plain value without its cost. */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

function jsonOrNull(s: string | null | undefined): string {
  return s === undefined || s === null ? 'null' : jsonString(s);
}

function jsonNumber(n: number): string {
  return Number.isFinite(n) ? `${n}` : 'null';
}

/**
 * Milliseconds rounded to microseconds, as JSON writes the number
 * (`3.214`, `12`, `0.5`): from the integer count of microseconds, since
 * writing a fraction out digit by digit is several times slower in V8.
 */
export function jsonMillis(ms: number): string {
  const us = Math.round(ms * 1000);
  if (!Number.isSafeInteger(us) || us < 0) return jsonNumber(us / 1000);
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  if (frac === 0) return `${whole}`;
  const digits = MILLIS[frac] as string;
  return `${whole}.${frac % 100 === 0 ? digits.slice(0, 1) : frac % 10 === 0 ? digits.slice(0, 2) : digits}`;
}

/**
 * A stretch of the record's text between two fields that vary from request
 * to request, built from up to four values that mostly do not (the route
 * and method; the status, decision, reason and upstream): kept for the last
 * values it was built from, so that the usual record neither quotes them
 * again nor joins them piece by piece (issue 6).
 */
class Stretch<A, B, C, D> {
  #a: A | undefined = undefined;
  #b: B | undefined = undefined;
  #c: C | undefined = undefined;
  #d: D | undefined = undefined;
  #text: string | undefined = undefined;
  constructor(readonly build: (a: A, b: B, c: C, d: D) => string) {}

  of(a: A, b: B, c: C, d: D): string {
    if (this.#text === undefined || a !== this.#a || b !== this.#b || c !== this.#c || d !== this.#d) {
      this.#text = this.build(a, b, c, d);
      this.#a = a;
      this.#b = b;
      this.#c = c;
      this.#d = d;
    }
    return this.#text;
  }
}

/** From after `principal` up to the value of `path`. */
const ROUTE_METHOD = new Stretch((route: string | undefined, method: string) => `,"route":${jsonOrNull(route)},"method":${jsonString(cut(method))},"path":`);
/** From after `path` up to the value of `duration_ms`. */
const OUTCOME = new Stretch(
  (status: number, decision: string, reason: string | undefined, upstream: string | undefined) =>
    `,"status":${jsonNumber(status)},"decision":"${decision}","reason":${jsonOrNull(cutOrNull(reason))},"upstream":${jsonOrNull(upstream)},"duration_ms":`,
);

/** `principal` up to `key_id` (and a JWT's `issuer`, `kid`), serialized once per principal: principals are reused. */
const WHO = new WeakMap<Principal, string>();

function who(p: Principal): string {
  let s = WHO.get(p);
  if (s === undefined) {
    s = `{"kind":${jsonString(p.kind)},"subject":${jsonString(cut(p.subject))}},"key_id":${jsonOrNull(cutOrNull(p.keyId))}`;
    // JWT records also carry the issuer and the key that verified the token.
    if (p.kind === 'jwt') s += `,"issuer":${jsonOrNull(cutOrNull(p.issuer))},"kid":${jsonOrNull(cutOrNull(p.kid))}`;
    WHO.set(p, s);
  }
  return s;
}

/**
 * The record as JSON text, written out field by field: the same text as
 * JSON.stringify() of the record object (the tests hold the two together),
 * without building that object; the principal's part is built once per
 * principal (issue 6: JSON.stringify() of the record was ~3 µs a request
 * in a CPU profile of the production setup).
 */
export function requestRecord(ctx: RequestContext): string {
  const p = ctx.principal;
  const ua = ctx.req.headers['user-agent'];
  const principal = p === undefined ? `null,"key_id":${jsonOrNull(cutOrNull(ctx.keyId))}` : who(p);
  return (
    // The request id never needs escaping: a UUIDv7, or the client's own of [A-Za-z0-9._-] (context.ts).
    `{"time":"${isoTime(ctx.time)}","request_id":"${ctx.id}","event":"request","principal":${principal}` +
    `${ROUTE_METHOD.of(ctx.route?.name, ctx.method, undefined, undefined)}${jsonString(cut(ctx.path || rawPath(ctx.req.url)))}` +
    `${OUTCOME.of(ctx.status, ctx.decision ?? 'error', ctx.reason, ctx.upstream)}${jsonMillis(ctx.durationMs)}` +
    // The TCP peer's address is an IP literal; one taken from X-Forwarded-For may hold anything.
    `,"client_ip":${ctx.clientIp === ctx.peerIp ? `"${ctx.peerIp}"` : jsonString(ctx.clientIp)},"user_agent":${typeof ua === 'string' ? jsonString(cut(ua)) : 'null'}}`
  );
}
