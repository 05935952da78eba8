/**
 * What a connection's bearer token was found to be, kept on the connection
 * (issue 6). A client on a kept-alive connection presents the same token
 * request after request; each one cost a SHA-256 (and, for a service
 * account, a Buffer and a timingSafeEqual) to find out again what the
 * previous request already proved. The memo holds the last token seen on
 * its connection and what the authenticators made of it; a different token
 * clears it.
 *
 * What may be kept here is only what stays true while the token is the same:
 * the verified-JWT cache key, and the store record a service-account token
 * matched in one store snapshot (service-account.ts checks that the
 * snapshot is still the current one, and the token's expiry and revocation
 * on every request). Refusals are never kept.
 *
 * The token is compared in constant time: behind a front proxy one
 * connection may carry the requests of several clients, and a comparison
 * that stops at the first difference would tell one of them, by its timing,
 * how much of its guess agrees with another's token. The token lives as
 * long as its connection, never longer, and is never written anywhere.
 */
import type { Socket } from 'node:net';

const kMemo = Symbol('gatehouse.token-memo');

interface Carrier {
  [kMemo]?: TokenMemo;
}

export class TokenMemo {
  /** The token these findings are about. */
  token: string;
  /** SHA-256 of the token: the verified-JWT cache key (jwt.ts). */
  jwtKey: string | undefined = undefined;
  /** What the service-account authenticator found (service-account.ts). */
  serviceAccount: unknown = undefined;

  constructor(token: string) {
    this.token = token;
  }
}

/** Equal strings, compared without stopping at the first difference (only the length, public for any token format, is told early). */
export function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** The memo of `socket` for `token`: what is known of it, or a fresh memo when the connection's last token was another. */
export function tokenMemo(socket: Socket, token: string): TokenMemo {
  const carrier = socket as Socket & Carrier;
  const memo = carrier[kMemo];
  if (memo !== undefined && sameToken(memo.token, token)) return memo;
  const fresh = new TokenMemo(token);
  carrier[kMemo] = fresh;
  return fresh;
}
