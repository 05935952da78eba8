/**
 * Header rules (DESIGN.md §5, §10): what reaches the upstream, and what of
 * the upstream's answer reaches the client. Names are compared
 * case-insensitively with "_" and "." read as "-", so that `X_Gatehouse_Subject`
 * is the same header as `X-Gatehouse-Subject` to any upstream framework.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Principal } from '../authn/authenticator.js';
import { registerHeaderNames } from '../upstream/header-names.js';
import type { RequestContext } from './context.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and their common non-standard kin. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Never forwarded from a client: they would make the upstream see another method or URL. */
const ALWAYS_DROPPED = new Set([
  'x-original-url',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  // Handled by the gateway itself (100-continue) or set by it.
  'expect',
  'host',
  'x-request-id',
  // Written by the gateway from the trusted proxy's values or its own (upstreamRequestHeaders()).
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);

/** Kept only from a trusted proxy; otherwise dropped. */
const TRUSTED_ONLY = new Set(['forwarded', 'x-real-ip', 'x-forwarded-prefix', 'x-forwarded-port']);

/** Connection values that list no other header (keep-alive is hop-by-hop itself). */
const PLAIN_CONNECTION = new Set(['keep-alive', 'close', 'upgrade']);

/** The headers added to every forwarded request (DESIGN.md §5). */
export const ADDED_HEADERS = [
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
  'x-gatehouse-subject',
  'x-gatehouse-auth',
  'x-gatehouse-roles',
  'x-gatehouse-teams',
  'x-gatehouse-scopes',
] as const;
registerHeaderNames(ADDED_HEADERS);

/** Lower-case with "_" and "." as "-". */
export function canonicalName(name: string): string {
  return canonicalLower(name.toLowerCase());
}

/** canonicalName() of a name that is lower-case already (undici's response header names). */
function canonicalLower(lower: string): string {
  return lower.includes('_') || lower.includes('.') ? lower.replace(/[_.]/g, '-') : lower;
}

/** Header names listed in Connection values, canonicalized. */
export function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // The usual values name no header that is not hop-by-hop already: nothing more to drop.
  if (typeof value === 'string' && PLAIN_CONNECTION.has(value.toLowerCase())) return undefined;
  const out = new Set<string>();
  for (const v of Array.isArray(value) ? value : [value]) for (const t of v.split(',')) if (t.trim()) out.add(canonicalName(t.trim()));
  return out;
}

/**
 * What the header rules (and the request checks) make of a header name,
 * whatever its spelling. Host, Content-Length and Transfer-Encoding are
 * their exact names, as Node's parser reads them: `Transfer_Encoding` is no
 * framing header to the parser, only a hop-by-hop one to the rules.
 */
export const enum HeaderKind {
  /** Passed in both directions. */
  Plain,
  /** Content-Length: passed. */
  ContentLength,
  /** Hop-by-hop: dropped in both directions. */
  HopByHop,
  /** Transfer-Encoding: hop-by-hop. */
  TransferEncoding,
  /** X-Request-Id: dropped in both directions (the gateway sets its own). */
  RequestId,
  /** Host: dropped from requests (undici sets the upstream's); passed in responses. */
  Host,
  /** Dropped from requests (set by the gateway, or never forwarded); passed in responses. */
  RequestDropped,
  /** Authorization: dropped from requests unless the route forwards it. */
  Authorization,
  /** Kept in requests only from a trusted proxy (Forwarded, X-Real-IP, X-Forwarded-Prefix/-Port). */
  Trusted,
}

function kindOfLower(lower: string): HeaderKind {
  if (lower === 'host') return HeaderKind.Host;
  if (lower === 'content-length') return HeaderKind.ContentLength;
  if (lower === 'transfer-encoding') return HeaderKind.TransferEncoding;
  const c = canonicalLower(lower);
  if (HOP_BY_HOP.has(c)) return HeaderKind.HopByHop;
  if (c === 'x-request-id') return HeaderKind.RequestId;
  if (ALWAYS_DROPPED.has(c) || c.startsWith('x-gatehouse-')) return HeaderKind.RequestDropped;
  if (c === 'authorization') return HeaderKind.Authorization;
  if (TRUSTED_ONLY.has(c)) return HeaderKind.Trusted;
  return HeaderKind.Plain;
}

/**
 * Kinds of the header names seen so far, by their spelling as received:
 * clients send the same few names request after request, and a lookup of
 * the name as it came is cheaper than lower-casing it, canonicalizing it
 * and asking four sets every time (issue 6; undici keeps such a table of
 * its own). Bounded: past KINDS_MAX names (a client inventing names) the
 * rest are worked out each time.
 */
const KINDS = new Map<string, HeaderKind>();
const KINDS_MAX = 1024;

/** The kind of a header name as received (any case). */
export function headerKind(name: string): HeaderKind {
  let k = KINDS.get(name);
  if (k === undefined) {
    k = kindOfLower(name.toLowerCase());
    if (KINDS.size < KINDS_MAX) KINDS.set(name, k);
  }
  return k;
}

/** The headers to send upstream, as a flat [name, value, …] list. */
export function upstreamRequestHeaders(ctx: RequestContext, upgrade: boolean): string[] {
  const { req, route } = ctx;
  const raw = req.rawHeaders;
  const listed = connectionTokens(req.headers.connection);
  // The caller's Authorization never reaches an upstream that gets credentials of its own.
  const keepAuth = route?.forwardAuthorization === true && route.upstream?.credentials === undefined;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const k = headerKind(name);
    if (k > HeaderKind.ContentLength && !(k === HeaderKind.Authorization && keepAuth) && !(k === HeaderKind.Trusted && ctx.trustedPeer)) continue;
    if (listed?.has(canonicalName(name))) continue;
    out.push(name, raw[i + 1] as string);
  }
  if (upgrade) out.push('connection', 'upgrade', 'upgrade', req.headers.upgrade ?? 'websocket');

  const h = req.headers;
  const xff = ctx.trustedPeer && typeof h['x-forwarded-for'] === 'string' ? `${h['x-forwarded-for']}, ${ctx.peerIp}` : ctx.peerIp;
  out.push('x-forwarded-for', xff);
  out.push('x-forwarded-proto', ctx.trustedPeer && typeof h['x-forwarded-proto'] === 'string' ? h['x-forwarded-proto'] : ctx.secure ? 'https' : 'http');
  out.push('x-forwarded-host', ctx.trustedPeer && typeof h['x-forwarded-host'] === 'string' ? h['x-forwarded-host'] : (h.host ?? ''));
  out.push('x-request-id', ctx.id);

  const p = ctx.principal;
  if (p && route && !route.public) {
    const id = identityHeaders(p, ctx.roles);
    for (let i = 0; i < id.length; i++) out.push(id[i] as string);
  }
  return out;
}

const IDENTITY = new WeakMap<Principal, { roles: Set<string> | undefined; headers: readonly string[] }>();

/**
 * The X-Gatehouse-* pairs for a principal and its effective roles on the
 * route: built once per (principal, roles) — both are reused from request to
 * request (rules.ts keeps decisions per principal).
 */
function identityHeaders(p: Principal, roles: Set<string> | undefined): readonly string[] {
  const hit = IDENTITY.get(p);
  if (hit !== undefined && hit.roles === roles) return hit.headers;
  const headers = Object.freeze([
    'x-gatehouse-subject', p.subject,
    'x-gatehouse-auth', p.kind,
    'x-gatehouse-roles', [...(roles ?? p.roles)].sort().join(','),
    'x-gatehouse-teams', [...p.teams.keys()].sort().join(','),
    'x-gatehouse-scopes', p.scopes.join(','),
  ]);
  IDENTITY.set(p, { roles, headers });
  return headers;
}

/**
 * The upstream's response headers minus hop-by-hop ones, plus X-Request-Id
 * (the gateway's, in place of any the upstream sent), as the flat
 * [name, value, …] list writeHead() takes without building an object.
 * `headers` is undici's parsed object: its names are lower-case already
 * (util.parseHeaders()), so they are not lower-cased again.
 */
export function clientResponseHeaders(ctx: RequestContext, headers: IncomingHttpHeaders): (string | string[])[] {
  const listed = connectionTokens(headers.connection);
  const out: (string | string[])[] = [];
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined) continue;
    const k = headerKind(name);
    if (k === HeaderKind.HopByHop || k === HeaderKind.TransferEncoding || k === HeaderKind.RequestId || listed?.has(canonicalLower(name))) continue;
    out.push(name, v);
  }
  out.push('x-request-id', ctx.id);
  return out;
}
