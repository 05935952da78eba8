import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { startGateway } from '../helpers/gateway.js';
import { parseReply, rawRequest, requestText } from '../helpers/http.js';
import { startUpstream } from '../helpers/upstream.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function config(upUrl: string, extra = '', upExtra = ''): string {
  return `
server: { listen: 127.0.0.1:0, limits: { max_body: 20mb } }
roles: { viewer: {} }
upstreams: { app: { url: "${upUrl}", timeout: 2s ${upExtra} } }
routes:
  - { name: open, match: { path: /open/** }, upstream: app, public: true }
  - { name: closed, match: { path: /closed/** }, upstream: app, allow: [{ roles: [viewer] }] }
${extra}`;
}

/** A port with nothing listening on it. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Sends a request with node:http (chunked when `chunks` is given) and collects the answer. */
function send(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer; chunks?: Buffer[] } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers = { ...opts.headers };
    if (opts.body && headers['content-length'] === undefined) headers['content-length'] = String(opts.body.length);
    const req = http.request(url, { method: opts.method ?? 'GET', headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.chunks) {
      const chunks = [...opts.chunks];
      const next = () => {
        const c = chunks.shift();
        if (!c) return req.end();
        if (req.write(c)) setImmediate(next);
        else req.once('drain', next);
      };
      next();
    } else req.end(opts.body);
  });
}

t.test('proxy keeps method, path, query and body intact', async (t) => {
  const up = await startUpstream(t);
  const { url } = await startGateway(t, config(up.url));
  const body = Buffer.from(JSON.stringify({ hello: 'world', n: [1, 2, 3] }));
  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
    const r = await send(`${url}/open/a/b.json?x=1&y=%20z&x=2&empty=`, {
      method,
      headers: method === 'GET' ? {} : { 'content-type': 'application/json' },
      ...(method === 'GET' ? {} : { body }),
    });
    t.equal(r.status, 200, method);
    t.equal(r.headers['x-upstream'], 'yes', 'upstream response headers are relayed');
    const rec = up.requests.at(-1)!;
    t.equal(rec.method, method);
    t.equal(rec.url, '/open/a/b.json?x=1&y=%20z&x=2&empty=', 'path and query unchanged');
    if (method !== 'GET') {
      t.same(rec.body, body, 'body intact');
      t.equal(rec.headers['content-type'], 'application/json');
    }
  }
  const head = await send(`${url}/open/h`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.body.length, 0);
  t.equal(up.requests.at(-1)!.method, 'HEAD');
});

t.test('multi-MB bodies stream both ways; a chunked request body arrives whole', async (t) => {
  const big = randomBytes(6 * 1024 * 1024);
  const up = await startUpstream(t, (req, res, body) => {
    if (req.url === '/open/sized') {
      // With Content-Length, written in pieces: the gateway ends the response with the last one.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(big.length) });
      for (let i = 0; i < big.length; i += 256 * 1024) res.write(big.subarray(i, i + 256 * 1024));
      res.end();
      return;
    }
    if (req.url === '/open/small') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
      res.end('small');
      return;
    }
    if (req.url === '/open/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      // Written in pieces, without Content-Length: chunked back through the gateway.
      for (let i = 0; i < big.length; i += 256 * 1024) res.write(big.subarray(i, i + 256 * 1024));
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${body.length} ${sha(body)} ${req.headers['transfer-encoding'] ?? ''} ${req.headers['content-length'] ?? ''}`);
  });
  const { url } = await startGateway(t, config(up.url));

  const down = await send(`${url}/open/download`);
  t.equal(down.status, 200);
  t.equal(down.body.length, big.length, 'whole download');
  t.equal(sha(down.body), sha(big), 'download intact');

  const sized = await send(`${url}/open/sized`);
  t.equal(sized.headers['content-length'], String(big.length), 'Content-Length relayed, not chunked');
  t.equal(sized.body.length, big.length, 'whole sized download');
  t.equal(sha(sized.body), sha(big), 'sized download intact');

  // Small responses one after another on one kept-alive connection: each ends where its body ends.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const sockets = new Set<unknown>();
  for (let i = 0; i < 5; i++) {
    const r = await new Promise<{ status: number; body: string; cl: string | undefined }>((resolve, reject) => {
      http
        .get(`${url}/open/small`, { agent }, (res) => {
          sockets.add(res.socket);
          let body = '';
          res.on('data', (c: Buffer) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cl: res.headers['content-length'] }));
        })
        .on('error', reject);
    });
    t.same(r, { status: 200, body: 'small', cl: '5' }, `small response ${i + 1}`);
  }
  t.equal(sockets.size, 1, 'all five on one connection');

  const upload = await send(`${url}/open/upload`, { method: 'POST', body: big, headers: { 'content-length': String(big.length) } });
  t.equal(upload.status, 200);
  const [n, hash, , cl] = upload.body.toString().split(' ');
  t.equal(Number(n), big.length, 'declared-length upload whole');
  t.equal(hash, sha(big), 'declared-length upload intact');
  t.equal(cl, String(big.length), 'Content-Length forwarded');

  const chunks: Buffer[] = [];
  for (let i = 0; i < big.length; i += 100_000) chunks.push(big.subarray(i, i + 100_000));
  const chunked = await send(`${url}/open/upload`, { method: 'POST', chunks });
  t.equal(chunked.status, 200);
  const [n2, hash2, te] = chunked.body.toString().split(' ');
  t.equal(Number(n2), big.length, 'chunked upload whole');
  t.equal(hash2, sha(big), 'chunked upload intact');
  t.equal(te, 'chunked', 'streamed on to the upstream without buffering into a Content-Length');
});

t.test('strip_prefix and an upstream URL with a base path', async (t) => {
  const up = await startUpstream(t);
  const { url } = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0 }
upstreams:
  based: { url: "${up.url}/legacy/v1/" }
  plain: { url: "${up.url}" }
routes:
  - { name: api, match: { path: /api/** }, upstream: based, strip_prefix: /api, public: true }
  - { name: bare, match: { path: /bare/** }, upstream: plain, strip_prefix: /bare, public: true }
  - { name: nostrip, match: { path: /keep/** }, upstream: based, public: true }
`,
  );
  const cases: [string, string][] = [
    ['/api/users/7?q=1', '/legacy/v1/users/7?q=1'],
    ['/api', '/legacy/v1'],
    ['/api/', '/legacy/v1/'],
    ['/bare/x/y?z', '/x/y?z'],
    ['/bare', '/'],
    ['/bare?q=1', '/?q=1'],
    ['/keep/it', '/legacy/v1/keep/it'],
  ];
  for (const [from, to] of cases) {
    const r = await send(url + from);
    t.equal(r.status, 200, from);
    t.equal(up.requests.at(-1)?.url, to, `${from} → ${to}`);
  }
});

t.test('a dead upstream gives 502 GW_UPSTREAM_UNAVAILABLE as problem+json', async (t) => {
  const port = await deadPort();
  const { url, logs } = await startGateway(t, config(`http://127.0.0.1:${port}`));
  const r = await fetch(`${url}/open/x`);
  t.equal(r.status, 502);
  t.equal(r.headers.get('content-type'), 'application/problem+json');
  const body = (await r.json()) as Record<string, unknown>;
  t.equal(body.code, 'GW_UPSTREAM_UNAVAILABLE');
  t.equal(body.status, 502);
  t.equal(body.request_id, r.headers.get('x-request-id'));
  t.notMatch(JSON.stringify(body), /app|127\.0\.0\.1/, 'the client body names neither the upstream nor its address');
  t.ok(logs.some((l) => l.includes('"upstream":"app"') && l.includes('"status":502')), 'the log names the upstream');
});

t.test('a stuck upstream gives 504 within its timeout', async (t) => {
  const stuck = http.createServer(() => {
    /* never answers */
  });
  await new Promise<void>((r) => stuck.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    stuck.closeAllConnections();
    stuck.close();
  });
  const port = (stuck.address() as AddressInfo).port;
  const { url } = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0 }
upstreams: { slow: { url: "http://127.0.0.1:${port}", timeout: 600ms } }
routes: [{ name: slow, match: { path: /** }, upstream: slow, public: true }]
`,
  );
  const started = Date.now();
  const r = await fetch(`${url}/x`);
  const took = Date.now() - started;
  t.equal(r.status, 504);
  const body = (await r.json()) as Record<string, unknown>;
  t.equal(body.code, 'GW_UPSTREAM_TIMEOUT');
  t.ok(took >= 550 && took < 1100, `answered after ${took} ms for a 600 ms timeout`);
});

t.test('timeout covers the whole response: a body that stalls is cut', async (t) => {
  const stall = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
  });
  await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    stall.closeAllConnections();
    stall.close();
  });
  const port = (stall.address() as AddressInfo).port;
  const { url } = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0 }
upstreams: { slow: { url: "http://127.0.0.1:${port}", timeout: 500ms } }
routes: [{ name: slow, match: { path: /** }, upstream: slow, public: true }]
`,
  );
  const started = Date.now();
  const outcome = await new Promise<string>((resolve) => {
    http.get(`${url}/x`, { agent: false }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve('end'));
      res.on('error', () => resolve('cut'));
      res.on('aborted', () => resolve('cut'));
    }).on('error', () => resolve('cut'));
  });
  const took = Date.now() - started;
  t.equal(outcome, 'cut', 'the client sees a truncated response, not a complete one');
  t.ok(took < 1500, `cut after ${took} ms`);
});

t.test('a client that goes away aborts the upstream request', async (t) => {
  let upstreamClosed: () => void;
  const closed = new Promise<void>((r) => (upstreamClosed = r));
  let arrived: () => void;
  const arrivedP = new Promise<void>((r) => (arrived = r));
  const hang = http.createServer((req, res) => {
    arrived();
    res.on('close', () => upstreamClosed());
  });
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    hang.closeAllConnections();
    hang.close();
  });
  const port = (hang.address() as AddressInfo).port;
  const { url, gw } = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0 }
upstreams: { slow: { url: "http://127.0.0.1:${port}", timeout: 30s } }
routes: [{ name: slow, match: { path: /** }, upstream: slow, public: true }]
`,
  );
  const req = http.get(`${url}/x`, { agent: false });
  req.on('error', () => {});
  await arrivedP;
  const started = Date.now();
  req.destroy();
  await closed;
  t.ok(Date.now() - started < 1000, 'the upstream request was aborted at once');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(gw.inflight, 0, 'nothing left in flight');
});

t.test('respond routes answer from the gateway with status, body and headers', async (t) => {
  const { url } = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0 }
routes:
  - name: status
    match: { path: /status }
    public: true
    respond: { status: 200, body: "ok\\n", headers: { content-type: text/plain, x-demo: "1" } }
  - name: gone
    match: { path: /old/** }
    public: true
    respond: { status: 410, body: '{"gone":true}', headers: { content-type: application/json } }
`,
  );
  const r = await fetch(`${url}/status`);
  t.equal(r.status, 200);
  t.equal(await r.text(), 'ok\n');
  t.equal(r.headers.get('content-type'), 'text/plain');
  t.equal(r.headers.get('x-demo'), '1');
  t.match(r.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
  const g = await fetch(`${url}/old/page`, { method: 'POST', body: 'x' });
  t.equal(g.status, 410);
  t.same(await g.json(), { gone: true });
  const h = await fetch(`${url}/status`, { method: 'HEAD' });
  t.equal(h.status, 200);
  t.equal(await h.text(), '');
});

t.test('no route gives 404 problem+json with every member and X-Request-Id', async (t) => {
  const up = await startUpstream(t);
  const { url } = await startGateway(t, config(up.url));
  const r = await fetch(`${url}/nowhere`, { headers: { 'x-request-id': 'trace-me.1' } });
  t.equal(r.status, 404);
  t.equal(r.headers.get('content-type'), 'application/problem+json');
  t.equal(r.headers.get('x-request-id'), 'trace-me.1');
  const body = (await r.json()) as Record<string, unknown>;
  t.same(Object.keys(body).sort(), ['code', 'detail', 'request_id', 'status', 'title', 'type']);
  t.equal(body.status, 404);
  t.equal(body.code, 'GW_ROUTE_NOT_FOUND');
  t.equal(body.request_id, 'trace-me.1');
  t.match(body.type, /^https:\/\//);
  t.equal(up.requests.length, 0);
});

t.test('a protected route refuses without a token: 401 with WWW-Authenticate, upstream untouched', async (t) => {
  const up = await startUpstream(t);
  const { url } = await startGateway(t, config(up.url));
  const r = await fetch(`${url}/closed/x`);
  t.equal(r.status, 401);
  t.match(r.headers.get('www-authenticate'), /^Bearer realm="gatehouse"/);
  t.ok(r.headers.get('x-request-id'));
  const body = (await r.json()) as Record<string, unknown>;
  t.equal(body.code, 'GW_UNAUTHENTICATED');
  t.equal(up.requests.length, 0);
});

t.test('Expect: 100-continue is answered only for a request that goes through', async (t) => {
  const up = await startUpstream(t);
  const { url, gw } = await startGateway(t, config(up.url));
  const port = gw.addresses.http!.port;
  // Refused: headers only, the body is never sent; the answer must come without a 100.
  const refused = await rawRequest(
    port,
    requestText(['POST /closed/upload HTTP/1.1', 'Host: x', 'Content-Length: 100000', 'Expect: 100-continue']),
    3000,
  );
  t.notMatch(refused, /^HTTP\/1\.1 100/, 'no 100 Continue for a refused request');
  const p = parseReply(refused);
  t.equal(p.status, 401);
  t.equal(p.headers.connection, 'close', 'the unread body is not drained: the connection closes');
  t.equal(up.requests.length, 0);

  // Allowed: 100 Continue, then the body goes through.
  const ok = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = http.request(`${url}/open/upload`, { method: 'POST', agent: false, headers: { expect: '100-continue', 'content-length': '5' } });
    req.on('continue', () => {
      continued = true;
      req.end('hello');
    });
    req.on('response', (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, continued }));
    });
    req.on('error', reject);
  });
  t.ok(ok.continued, '100 Continue was sent');
  t.equal(ok.status, 200);
  t.same(up.requests.at(-1)?.body.toString(), 'hello');
  t.equal(up.requests.at(-1)?.headers.expect, undefined, 'Expect is not forwarded');
});
