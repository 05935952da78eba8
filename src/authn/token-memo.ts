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
 * how much of its guess agrees with another's token. The token's bytes are
 * kept as long as its connection (and in the shared scratch buffer until
 * the next token overwrites them), and are never written anywhere.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';

const kMemo = Symbol('gatehouse.token-memo');

interface Carrier {
  [kMemo]?: TokenMemo;
}

export class TokenMemo {
  /** The bytes of the token these findings are about, for the comparison with the next request's (a buffer of its own: a slice of Buffer's shared pool would keep the whole pool alive with the connection). */
  readonly bytes: Buffer;
  /** The token passed the RFC 6750 b64token check (authenticate.ts). */
  wellFormed = false;
  /** SHA-256 of the token: the verified-JWT cache key (jwt.ts). */
  jwtKey: string | undefined = undefined;
  /** What the service-account authenticator found (service-account.ts). */
  serviceAccount: unknown = undefined;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
}

/** Where a request's token is written for the comparison; grown for a longer one. */
let scratch = Buffer.allocUnsafeSlow(1024);
/** The first bytes of `scratch` as long as the last token: tokens on a connection keep their length, and so does the view. */
let view = scratch.subarray(0, 0);

/**
 * The memo of `socket` for `token`: what is known of it, or a fresh memo
 * when the connection's last token was another. `token` comes from a
 * header, one byte per character (latin1), so its latin1 bytes are exactly
 * it. Compared as bytes with timingSafeEqual(): a loop over the characters
 * of a 300-character JWT (a slice of the header) cost more than the
 * SHA-256 it saves.
 */
export function tokenMemo(socket: Socket, token: string): TokenMemo {
  if (token.length > scratch.length) {
    scratch = Buffer.allocUnsafeSlow(Math.max(token.length, scratch.length * 2));
    view = scratch.subarray(0, 0);
  }
  const n = scratch.write(token, 0, 'latin1');
  if (view.length !== n) view = scratch.subarray(0, n);
  const carrier = socket as Socket & Carrier;
  const memo = carrier[kMemo];
  if (memo !== undefined && memo.bytes.length === n && timingSafeEqual(memo.bytes, view)) return memo;
  const bytes = Buffer.allocUnsafeSlow(n);
  scratch.copy(bytes, 0, 0, n);
  const fresh = new TokenMemo(bytes);
  carrier[kMemo] = fresh;
  return fresh;
}
