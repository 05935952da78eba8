/**
 * Refuses ambiguous or dangerous requests before routing (DESIGN.md §10) and
 * establishes the normalized path, the host and the client address.
 */
import { GatewayError } from '../errors.js';
import { normalizeHost } from '../routing/router.js';
import { normalizePath, splitTarget } from '../routing/normalize.js';
import { normalizeIp, type RequestContext } from './context.js';
import { HeaderKind, headerKind } from './transform.js';

function bad(reason: string, message: string): GatewayError {
  return new GatewayError('GW_BAD_REQUEST', message, { reason });
}

export function checkRequest(ctx: RequestContext): void {
  const { req } = ctx;
  const method = ctx.method;
  if (method === 'CONNECT' || method === 'TRACE') throw bad('method_refused', `${method} is not proxied`);

  // Count headers that must appear once; Node joins or drops duplicates otherwise.
  const raw = req.rawHeaders;
  let hosts = 0;
  let auths = 0;
  let hasTE = false;
  let hasCL = false;
  for (let i = 0; i < raw.length; i += 2) {
    const k = headerKind(raw[i] as string);
    if (k === HeaderKind.Host) {
      hosts++;
      if ((raw[i + 1] as string).trim() === '') throw bad('host_invalid', 'empty Host header');
    } else if (k === HeaderKind.Authorization) auths++;
    else if (k === HeaderKind.TransferEncoding) hasTE = true;
    else if (k === HeaderKind.ContentLength) hasCL = true;
  }
  if (hosts !== 1 && !(hosts === 0 && req.httpVersion === '1.0')) throw bad('host_invalid', hosts === 0 ? 'missing Host header' : 'several Host headers');
  if (auths > 1) throw bad('authorization_duplicate', 'several Authorization headers');
  if (hasTE && hasCL) throw bad('framing_ambiguous', 'both Content-Length and Transfer-Encoding');
  if (hasTE && req.httpVersion === '1.0') throw bad('framing_ambiguous', 'Transfer-Encoding in an HTTP/1.0 request');
  const upgrade = req.headers.upgrade;
  if (upgrade !== undefined && /(^|,)\s*h2c\s*($|,)/i.test(upgrade)) throw bad('upgrade_refused', 'Upgrade: h2c is refused');

  const hostHeader = req.headers.host ?? '';
  let target = req.url ?? '/';
  if (target.includes('#')) throw bad('target_invalid', 'fragment in request target');
  if (target === '*') throw bad('target_invalid', `${method} * is not proxied`);
  if (!target.startsWith('/')) {
    // Absolute form: its authority must agree with Host (RFC 9112 §3.2.2).
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw bad('target_invalid', 'malformed request target');
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password) throw bad('target_invalid', 'unsupported absolute request target');
    const dflt = url.protocol === 'https:' ? '443' : '80';
    if (normalizeHost(url.host) !== normalizeHost(hostHeader) || (url.port || dflt) !== (portOf(hostHeader) || dflt)) throw bad('host_mismatch', 'absolute-form target disagrees with Host');
    const q = target.indexOf('?', target.indexOf('//') + 2);
    const slash = target.indexOf('/', target.indexOf('//') + 2);
    target = slash === -1 || (q !== -1 && q < slash) ? '/' + (q === -1 ? '' : target.slice(q)) : target.slice(slash);
  }
  const { path, query } = splitTarget(target);
  ctx.path = normalizePath(path);
  ctx.query = query;
  ctx.host = normalizeHost(hostHeader);

  const trusted = ctx.runtime.trustedProxies;
  if (trusted && trusted.check(ctx.peerIp, ctx.peerIp.includes(':') ? 'ipv6' : 'ipv4')) {
    ctx.trustedPeer = true;
    const xff = req.headers['x-forwarded-for'];
    if (typeof xff === 'string') {
      // The right-most address that is not itself a trusted proxy is the client.
      const hops = xff.split(',').map((s) => normalizeIp(s.trim())).filter(Boolean);
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i] as string;
        ctx.clientIp = hop;
        if (!trusted.check(hop, hop.includes(':') ? 'ipv6' : 'ipv4')) break;
      }
    }
  }

  const cl = req.headers['content-length'];
  if (cl !== undefined && Number(cl) > ctx.runtime.limits.maxBody) {
    throw new GatewayError('GW_PAYLOAD_TOO_LARGE', `declared body of ${cl} bytes exceeds max_body`, { reason: 'body_too_large' });
  }
}

function portOf(host: string): string {
  const m = /:(\d+)$/.exec(host);
  return m ? (m[1] as string) : '';
}
