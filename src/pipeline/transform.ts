/**
 * Header rules (DESIGN.md §5, §10): what reaches the upstream, and what of
 * the upstream's answer reaches the client. Names are compared
 * case-insensitively with "_" and "." read as "-", so that `X_Gatehouse_Subject`
 * is the same header as `X-Gatehouse-Subject` to any upstream framework.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Principal } from '../authn/authenticator.js';
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
]);

/** Kept only from a trusted proxy; otherwise dropped (and X-Forwarded-* re-set). */
const FORWARDING = new Set(['forwarded', 'x-real-ip', 'x-forwarded-prefix', 'x-forwarded-port', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

/** Connection values that list no other header (keep-alive is hop-by-hop itself). */
const PLAIN_CONNECTION = new Set(['keep-alive', 'close', 'upgrade']);

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
    const c = canonicalName(name);
    if (HOP_BY_HOP.has(c) || ALWAYS_DROPPED.has(c)) continue;
    if (c.startsWith('x-gatehouse-')) continue;
    if (c === 'authorization' && !keepAuth) continue;
    if (FORWARDING.has(c) && !(ctx.trustedPeer && (c === 'forwarded' || c === 'x-real-ip' || c === 'x-forwarded-prefix' || c === 'x-forwarded-port'))) continue;
    if (listed?.has(c)) continue;
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
    const c = canonicalLower(name);
    if (HOP_BY_HOP.has(c) || c === 'x-request-id' || listed?.has(c)) continue;
    out.push(name, v);
  }
  out.push('x-request-id', ctx.id);
  return out;
}
