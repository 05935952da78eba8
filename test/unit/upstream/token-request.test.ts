import t from 'tap';
import { buildTokenRequest, formEncode, parseTokenResponse, TokenError } from '../../../src/upstream/token-request.js';

const base = { tokenUrl: 'https://idp.example/token', clientId: 'id', clientSecret: 'sec', scopes: [], params: {}, timeoutMs: 1000 } as const;

t.test('formEncode() is application/x-www-form-urlencoded (space as +, reserved characters escaped)', async (t) => {
  t.equal(formEncode('a b:c/d+e&f=g%ü~*'), 'a+b%3Ac%2Fd%2Be%26f%3Dg%25%C3%BC%7E*');
  t.equal(formEncode('plain-id_1.x'), 'plain-id_1.x');
});

t.test('buildTokenRequest() with client_auth basic encodes both parts before Base64', async (t) => {
  const r = buildTokenRequest({ ...base, clientId: 'my client', clientSecret: 'p:w/+', clientAuth: 'basic', scopes: ['a', 'b.c'], audience: 'api', params: { resource: 'urn:x' } });
  t.equal(r.method, 'POST');
  t.equal(r.url, 'https://idp.example/token');
  t.equal(r.headers['content-type'], 'application/x-www-form-urlencoded');
  t.equal(Buffer.from(r.headers.authorization!.slice(6), 'base64').toString(), 'my+client:p%3Aw%2F%2B');
  const form = new URLSearchParams(r.body);
  t.same([...form.keys()], ['grant_type', 'scope', 'audience', 'resource']);
  t.equal(form.get('scope'), 'a b.c');
  t.equal(form.get('grant_type'), 'client_credentials');
});

t.test('buildTokenRequest() with client_auth body sends the client in the form, no Authorization', async (t) => {
  const r = buildTokenRequest({ ...base, clientAuth: 'body' });
  t.equal(r.headers.authorization, undefined);
  t.equal(r.body, 'grant_type=client_credentials&client_id=id&client_secret=sec');
});

t.test('buildTokenRequest() never lets params override the grant or the client', async (t) => {
  const r = buildTokenRequest({ ...base, clientAuth: 'body', params: { grant_type: 'password', client_id: 'evil', x: '1' } });
  const form = new URLSearchParams(r.body);
  t.equal(form.get('grant_type'), 'client_credentials');
  t.equal(form.get('client_id'), 'id');
  t.equal(form.get('x'), '1');
});

t.test('parseTokenResponse() accepts a Bearer token of any case and a numeric or numeric-string expires_in', async (t) => {
  t.same(parseTokenResponse({ access_token: 'abc', token_type: 'bearer', expires_in: 60 }), { accessToken: 'abc', expiresIn: 60, expiresInGiven: true, scope: undefined });
  t.equal(parseTokenResponse({ access_token: 'abc', token_type: 'BEARER', expires_in: '3599' }).expiresIn, 3599);
  const noExp = parseTokenResponse({ access_token: 'abc', token_type: 'Bearer', scope: 'a b' });
  t.equal(noExp.expiresInGiven, false, 'expires_in is optional in RFC 6749 §5.1: a default applies');
  t.equal(noExp.scope, 'a b');
});

t.test('parseTokenResponse() refuses garbage as invalid_response', async (t) => {
  const bad: unknown[] = [
    null,
    [],
    'token',
    {},
    { access_token: 42, token_type: 'Bearer' },
    { access_token: '', token_type: 'Bearer' },
    { access_token: 'a\r\nx-injected: 1', token_type: 'Bearer' },
    { access_token: 'has space', token_type: 'Bearer' },
    { access_token: 'abc' },
    { access_token: 'abc', token_type: 'mac' },
    { access_token: 'abc', token_type: 'Bearer', expires_in: -1 },
    { access_token: 'abc', token_type: 'Bearer', expires_in: 0 },
    { access_token: 'abc', token_type: 'Bearer', expires_in: 'soon' },
    { access_token: 'abc', token_type: 'Bearer', expires_in: {} },
  ];
  for (const b of bad) {
    let err: unknown;
    try {
      parseTokenResponse(b);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof TokenError && err.result === 'invalid_response' && !err.message.includes('abc'), JSON.stringify(b));
  }
});
