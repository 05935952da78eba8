/**
 * SHA-256 of a short string, on the request path (audit chain, service
 * account secrets, the verified-JWT cache): the one-shot crypto.hash()
 * (Node ≥ 20.12, ~2× faster than createHash() for one input) where there,
 * createHash() otherwise. UTF-8 input.
 */
import * as nodeCrypto from 'node:crypto';

type OneShot = {
  (alg: string, data: string, enc: 'hex' | 'base64url'): string;
  (alg: string, data: string, enc: 'buffer'): Buffer;
};
const oneShot = (nodeCrypto as { hash?: OneShot }).hash;

export function sha256(data: string, enc: 'hex' | 'base64url'): string;
export function sha256(data: string, enc: 'buffer'): Buffer;
export function sha256(data: string, enc: 'hex' | 'base64url' | 'buffer'): string | Buffer {
  if (oneShot) return enc === 'buffer' ? oneShot('sha256', data, 'buffer') : oneShot('sha256', data, enc);
  const h = nodeCrypto.createHash('sha256').update(data, 'utf8');
  return enc === 'buffer' ? h.digest() : h.digest(enc);
}
