import t from 'tap';
import { base62, crc32, crc32Js, hashSecret, issueToken, parseToken, secretMatches, tokenParts } from '../../../src/authn/tokens.js';

t.test('issueToken() makes <prefix>_<key id>_<secret><checksum> with a 256-bit secret', async (t) => {
  const a = issueToken('gth');
  t.match(a.token, /^gth_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$/);
  t.match(a.hash, /^[0-9a-f]{64}$/);
  t.notOk(a.token.includes(a.hash));
  const p = parseToken('gth', a.token);
  t.ok(p.ok);
  if (p.ok) {
    t.equal(p.keyId, a.keyId);
    t.equal(hashSecret(p.secret), a.hash, 'only the hash of the secret is needed to verify');
    t.ok(secretMatches(p.secret, a.hash));
    t.notOk(secretMatches(p.secret.slice(1) + 'x', a.hash));
  }
  t.not(issueToken('gth').token, a.token);
  t.equal(base62(new Uint8Array(32).fill(255), 43).length, 43, '2^256 - 1 fits in 43 base62 digits');
});

t.test('parseToken() rejects mistyped and forged-shape tokens without a store', async (t) => {
  const { token } = issueToken('gth');
  const flip = (i: number) => token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
  for (const i of [4, 10, 17, 40, 60, token.length - 1]) t.notOk(parseToken('gth', flip(i)).ok, `a change at ${i} fails the checksum`);
  t.notOk(parseToken('gth', token.slice(0, -1)).ok, 'truncated');
  t.notOk(parseToken('gth', token + 'A').ok, 'too long');
  t.notOk(parseToken('gth', token.replace('_', '-')).ok, 'wrong separator');
  t.notOk(parseToken('abc', token).ok, 'other prefix');
  const bad = parseToken('gth', flip(30));
  t.ok(!bad.ok && !bad.problem.includes(token.slice(17, 40)), 'the problem text never repeats the token');
  const problem = (tk: string) => {
    const r = parseToken('gth', tk);
    return r.ok ? 'ok' : r.problem;
  };
  const at = (i: number, c: string) => token.slice(0, i) + c + token.slice(i + 1);
  t.match(problem(at(16, '-')), /shape/, 'the separator after the key id');
  t.match(problem(at(3, 'x')), /shape/, 'the separator after the prefix');
  t.match(problem(at(8, '-')), /outside base62/, 'in the key id');
  t.match(problem(at(30, '+')), /outside base62/, 'in the secret');
  t.match(problem(at(token.length - 2, '/')), /outside base62/, 'in the checksum');
  t.match(problem(token.slice(0, -6) + 'zzzzzz'), /checksum/, 'a checksum beyond 32 bits');
  const sum = token.slice(-6);
  const swapped = sum.replace(/[a-zA-Z]/, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()));
  if (swapped !== sum) t.match(problem(token.slice(0, -6) + swapped), /checksum/, 'the checksum is case-sensitive');
  const good = parseToken('gth', token);
  t.same(good, { ok: true, keyId: token.slice(4, 16), secret: token.slice(17, 60) });
});

t.test('crc32() is the IEEE CRC-32', async (t) => {
  for (const f of [crc32, crc32Js]) {
    t.equal(f('123456789'), 0xcbf43926);
    t.equal(f(''), 0);
  }
  for (const text of ['gth_abc', 'ü€𝄞', 'x'.repeat(1000)]) t.equal(crc32(text), crc32Js(text), 'zlib.crc32 (where there) and ours agree');
});

t.test('tokens issued by earlier releases still parse (checksum unchanged)', async (t) => {
  // Issued by 3c1e9d1, before the checksum went from BigInt to Number arithmetic.
  const p = parseToken('gth', 'gth_K8bkOOKVG0kg_XD09SSjX94DtDaLonvJGSJKgjSe9s0vGBGfU8PU4rUy41SMLX');
  t.ok(p.ok);
  for (let i = 0; i < 200; i++) t.ok(parseToken('gth', issueToken('gth').token).ok);
});

t.test('tokenParts() splits by length and separators only; parseToken() is the full check', async (t) => {
  const { token, keyId } = issueToken('gth');
  t.same(tokenParts('gth', token), { keyId, secret: token.slice(17, 60) });
  t.equal(tokenParts('gth', token.slice(0, -1)), undefined, 'truncated');
  t.equal(tokenParts('gth', token.replace('_', '-')), undefined, 'wrong separator');
  t.equal(tokenParts('abc', token), undefined, 'other prefix');
  const forged = token.slice(0, 30) + '+' + token.slice(31);
  t.ok(tokenParts('gth', forged), 'digits are not checked here: only an issued token matches its stored hash');
  t.notOk(parseToken('gth', forged).ok);
});
