/** token-memo.ts: what one connection's bearer token was found to be, and when that is forgotten. */
import { Socket } from 'node:net';
import t from 'tap';
import { sameToken, tokenMemo } from '../../../src/authn/token-memo.js';

t.test('sameToken: equal only when every character is', async (t) => {
  t.ok(sameToken('gth_abc_secret', 'gth_abc_secret'));
  t.ok(sameToken('gth_abc_secret', ['gth', 'abc', 'secret'].join('_')), 'equal text built another way');
  t.notOk(sameToken('gth_abc_secret', 'gth_abc_secreT'), 'the last character differs');
  t.notOk(sameToken('gth_abc_secret', 'Gth_abc_secret'), 'the first character differs');
  t.notOk(sameToken('gth_abc_secret', 'gth_abc_secre'), 'one character shorter');
  t.notOk(sameToken('', 'x'));
  t.ok(sameToken('', ''));
});

t.test('a connection keeps what its token proved until another token comes', async (t) => {
  const socket = new Socket();
  const other = new Socket();
  const first = tokenMemo(socket, 'token-A');
  first.jwtKey = 'key-of-A';
  first.serviceAccount = { account: 'a' };
  const again = tokenMemo(socket, ['token', 'A'].join('-'));
  t.equal(again, first, 'the same token again: the same findings');
  t.equal(again.jwtKey, 'key-of-A');
  t.equal(tokenMemo(other, 'token-A').jwtKey, undefined, 'another connection knows nothing of it');
  const b = tokenMemo(socket, 'token-B');
  t.not(b, first);
  t.equal(b.token, 'token-B');
  t.equal(b.jwtKey, undefined, 'a new token starts with nothing known');
  t.equal(b.serviceAccount, undefined);
  t.equal(tokenMemo(socket, 'token-A').jwtKey, undefined, 'back to the first token: found out again, not remembered from before');
});
