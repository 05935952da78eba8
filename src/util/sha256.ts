/**
 * SHA-256 of a short string, on the request path (audit chain, service
 * account secrets, the verified-JWT cache): the one-shot crypto.hash()
 * (Node ≥ 20.12, ~2× faster than createHash() for one input) where there,
 * createHash() otherwise. UTF-8 input.
 */
import * as nodeCrypto from 'node:crypto';

const oneShot = (nodeCrypto as { hash?: (alg: string, data: string | Uint8Array, enc: 'hex' | 'base64url') => string }).hash;

/** As a string: crypto.hash() returns hex in well under half the time it takes to return a Buffer. A string is hashed as UTF-8. */
export function sha256(data: string | Uint8Array, enc: 'hex' | 'base64url'): string {
  return oneShot ? oneShot('sha256', data, enc) : nodeCrypto.createHash('sha256').update(data).digest(enc);
}
