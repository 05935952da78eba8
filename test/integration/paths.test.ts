import t from 'tap';
import { startGateway, type Tap } from '../helpers/gateway.js';
import { parseReply, rawRequest, requestText } from '../helpers/http.js';
import { startUpstream } from '../helpers/upstream.js';

async function setup(t: Tap) {
  const up = await startUpstream(t);
  const g = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0 }
upstreams: { app: { url: "${up.url}" } }
routes:
  - { name: api-host, match: { host: API.Example.com, path: /hosted/** }, upstream: app, public: true }
  - { name: wild-host, match: { host: "*.tenant.test", path: /hosted/** }, upstream: app, public: true }
  - { name: read, match: { path: /items/*, methods: [GET, HEAD] }, upstream: app, public: true, respond: null }
  - { name: write, match: { path: /items/*, methods: [POST] }, public: true, respond: { status: 201, body: write } }
  - { name: first, match: { path: /dup/** }, public: true, respond: { body: first } }
  - { name: second, match: { path: /dup/x }, public: true, respond: { body: second } }
  - { name: x, match: { path: /x/** }, upstream: app, public: true }
  - { name: exact, match: { path: /exact }, public: true, respond: { body: exact } }
`.replace(', respond: null', ''),
  );
  const port = g.gw.addresses.http!.port;
  const get = async (target: string, host = 'gw.test') => parseReply(await rawRequest(port, requestText([`GET ${target} HTTP/1.1`, `Host: ${host}`, 'Connection: close'])));
  return { up, ...g, port, get };
}

t.test('dangerous paths are refused with 400 and never reach the upstream', async (t) => {
  const { up, get } = await setup(t);
  const bad = [
    '/x/a%2Fb',
    '/x/a%2fb',
    '/x/a%5Cb',
    '/x/a%5cb',
    '/x/a%00b',
    '/x/a%3Bb',
    '/x/a%3bjsessionid=1',
    '/x/a%25b',
    '/x/a%252Fb',
    '/x/a%3Fb',
    '/x/a%23b',
    '/x/a\\b',
    '/x/a%0Ab',
    '/x/a%0db',
    '/x/a%1Fb',
    '/x/a%7Fb',
    '/x/a%09b',
    '/x/%C0%AF',
    '/x/%E2%82',
    '/x/%FF',
    '/x/%ED%A0%80',
    '/x/%',
    '/x/%4',
    '/x/%G1',
    '/a/../../b',
    '/x/../../etc/passwd',
    '/x/%2E%2E/%2E%2E/b',
    '/x/.%2E/%2e./b',
    '/..',
    '/x/a#frag',
  ];
  for (const target of bad) {
    const r = await get(target);
    t.equal(r.status, 400, `${target} → 400`);
    t.equal(r.headers['content-type'], 'application/problem+json', `${target}: problem+json`);
  }
  // A raw control character or DEL: Node's parser or the gateway refuses it, with 400 either way.
  for (const target of ['/x/a\x01b', '/x/a\x7fb']) {
    const r = await get(target);
    t.equal(r.status, 400, `${JSON.stringify(target)} → 400`);
  }
  t.same(
    up.requests.map((r) => r.url),
    [],
    'nothing reached the upstream',
  );
});

t.test('paths are normalized and the upstream gets exactly the normalized path', async (t) => {
  const { up, get } = await setup(t);
  const cases: [string, string][] = [
    ['/x/%41%62c', '/x/Abc'],
    ['/x/%7euser', '/x/~user'],
    ['/x//a///b', '/x/a/b'],
    ['//x/a', '/x/a'],
    ['/x/./a/./b', '/x/a/b'],
    ['/x/a/../b', '/x/b'],
    ['/x/a/b/..', '/x/a/'], // RFC 3986 §5.2.4: a final dot segment leaves its slash
    ['/x/a/...', '/x/a/...'],
    ['/x/a/b/../', '/x/a/'],
    ['/x/%2e/a', '/x/a'],
    ['/x/a/%2E%2E/b', '/x/b'],
    ['/y/../x/a', '/x/a'],
    ['/x/caf%C3%A9', '/x/caf%C3%A9'],
    ['/x/caf%c3%a9', '/x/caf%C3%A9'],
    ['/x/a%20b', '/x/a%20b'],
    ['/x/a%40b%3Ac', '/x/a%40b%3Ac'],
    ['/x/a?q=%2F..%5C&r=../x', '/x/a?q=%2F..%5C&r=../x'],
    ['/x/a?', '/x/a?'],
    ['/x', '/x'],
    ['/x/', '/x/'],
  ];
  for (const [from, to] of cases) {
    const r = await get(from);
    t.equal(r.status, 200, `${from} → 200`);
    t.equal(up.requests.at(-1)?.url, to, `${from} → ${to}`);
  }
});

t.test('route matching: ** depth, * one segment, methods, host, first match wins', async (t) => {
  const { up, get, port } = await setup(t);
  for (const p of ['/x', '/x/', '/x/y', '/x/y/z/w']) t.equal((await get(p)).status, 200, `/x/** matches ${p}`);
  t.equal((await get('/xy')).status, 404, '/x/** does not match /xy');
  t.equal((await get('/X/y')).status, 404, 'paths are case-sensitive');

  t.equal((await get('/items/7')).status, 200, '/items/* matches /items/7');
  t.equal((await get('/items')).status, 404, '/items/* does not match /items');
  t.equal((await get('/items/7/8')).status, 404, '/items/* does not match two segments');
  const post = parseReply(await rawRequest(port, requestText(['POST /items/7 HTTP/1.1', 'Host: a', 'Connection: close', 'Content-Length: 0'])));
  t.equal(post.status, 201, 'method filter selects the write route');
  t.equal(post.body, 'write');
  const del = parseReply(await rawRequest(port, requestText(['DELETE /items/7 HTTP/1.1', 'Host: a', 'Connection: close'])));
  t.equal(del.status, 404, 'a method no route accepts gets 404');
  t.equal(del.headers['content-type'], 'application/problem+json');

  t.equal((await get('/dup/x')).body, 'first', 'first match in file order wins');
  t.equal((await get('/exact')).body, 'exact');
  t.equal((await get('/exact/')).status, 404, 'an exact pattern does not match a trailing slash');

  const before = up.requests.length;
  for (const host of ['api.example.com', 'API.EXAMPLE.COM', 'api.example.com:8443', 'api.example.com.', 'Api.Example.Com.:80']) {
    t.equal((await get('/hosted/a', host)).status, 200, `host ${host} matches`);
  }
  for (const host of ['a.tenant.test', 'B.Tenant.Test:81']) t.equal((await get('/hosted/a', host)).status, 200, `wildcard host ${host} matches`);
  for (const host of ['tenant.test', 'other.example.com', 'api.example.com.evil.test']) t.equal((await get('/hosted/a', host)).status, 404, `host ${host} does not match`);
  t.equal(up.requests.length - before, 7);

  const nf = await get('/nothing/here');
  t.equal(nf.status, 404);
  const body = JSON.parse(nf.body) as Record<string, unknown>;
  t.equal(body.code, 'GW_ROUTE_NOT_FOUND');
  t.equal(body.request_id, nf.headers['x-request-id']);
});

t.test('absolute-form targets route on their path once the authority agrees with Host', async (t) => {
  const { up, get } = await setup(t);
  const r = await get('http://gw.test/x/a?q=1', 'gw.test');
  t.equal(r.status, 200);
  t.equal(up.requests.at(-1)?.url, '/x/a?q=1');
  const r2 = await get('http://GW.test:80/x/b', 'gw.test');
  t.equal(r2.status, 200);
  t.equal(up.requests.at(-1)?.url, '/x/b');
  const bad = await get('http://other.test/x/a', 'gw.test');
  t.equal(bad.status, 400, 'authority disagreeing with Host → 400');
  const badPort = await get('http://gw.test:8080/x/a', 'gw.test');
  t.equal(badPort.status, 400, 'port disagreeing with Host → 400');
});
