/** token-memo.ts: what one connection's bearer token was found to be, and when that is forgotten. */
import { Socket } from 'node:net';
import t from 'tap';
import { tokenMemo } from '../../../src/authn/token-memo.js';

t.test('a connection keeps what its token proved until another token comes', async (t) => {
  const socket = new Socket();
  const other = new Socket();
  const first = tokenMemo(socket, 'token-A');
  first.jwtKey = 'key-of-A';
  first.serviceAccount = { account: 'a' };
  const again = tokenMemo(socket, ['token', 'A'].join('-'));
  t.equal(again, first, 'the same token again, built another way: the same findings');
  t.equal(again.jwtKey, 'key-of-A');
  t.equal(tokenMemo(other, 'token-A').jwtKey, undefined, 'another connection knows nothing of it');
  const b = tokenMemo(socket, 'token-B');
  t.not(b, first);
  t.equal(b.bytes.toString('latin1'), 'token-B', 'the memo is of the new token');
  t.equal(b.jwtKey, undefined, 'a new token starts with nothing known');
  t.equal(b.serviceAccount, undefined);
  t.equal(b.wellFormed, false);
  t.equal(tokenMemo(socket, 'token-A').jwtKey, undefined, 'back to the first token: found out again, not remembered from before');
});

t.test('any difference makes another token: first or last character, length, a byte above ASCII', async (t) => {
  const socket = new Socket();
  const base = 'gth_abc_' + 'x'.repeat(50);
  const remembered = () => {
    const m = tokenMemo(socket, base);
    m.jwtKey = 'known';
    return m;
  };
  for (const [what, token] of [
    ['the last character', base.slice(0, -1) + 'y'],
    ['the first character', 'G' + base.slice(1)],
    ['one character shorter', base.slice(0, -1)],
    ['one character longer', base + 'x'],
    ['a latin1 character in place of an ASCII one', base.slice(0, -1) + '\u00f8'],
  ] as const) {
    remembered();
    t.equal(tokenMemo(socket, token).jwtKey, undefined, what);
  }
  t.equal(remembered(), tokenMemo(socket, base), 'and the same token is still recognized');
});

t.test('a token longer than any before (a large JWT) is compared whole', async (t) => {
  const socket = new Socket();
  const long = 'a'.repeat(5000);
  const m = tokenMemo(socket, long);
  m.jwtKey = 'long';
  t.equal(tokenMemo(socket, 'a'.repeat(5000)).jwtKey, 'long');
  t.equal(tokenMemo(socket, 'a'.repeat(4999) + 'b').jwtKey, undefined, 'a difference in its last byte is seen');
});
