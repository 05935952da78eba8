import { createHash } from 'node:crypto';
import t from 'tap';
import { sha256 } from '../../../src/util/sha256.js';

t.test('sha256() is SHA-256 of the UTF-8 bytes, in each encoding', async (t) => {
  t.equal(sha256('abc', 'hex'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'FIPS 180-2 test vector');
  for (const text of ['', 'gth_secret', 'ü€𝄞', 'x'.repeat(10_000)]) {
    const ref = createHash('sha256').update(text, 'utf8');
    const digest = ref.copy().digest();
    t.equal(sha256(text, 'hex'), digest.toString('hex'));
    t.equal(sha256(text, 'base64url'), digest.toString('base64url'));
    // Bytes, also a view into a larger buffer (the audit chain hashes lines where they lie in a batch).
    const bytes = Buffer.from(text, 'utf8');
    const framed = Buffer.concat([Buffer.from('head'), bytes, Buffer.from('tail')]);
    t.equal(sha256(bytes, 'hex'), digest.toString('hex'));
    t.equal(sha256(framed.subarray(4, 4 + bytes.length), 'hex'), digest.toString('hex'), 'only the bytes of the view');
  }
});
