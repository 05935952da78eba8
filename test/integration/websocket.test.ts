import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { startGateway, type Tap } from '../helpers/gateway.js';
import { parseReply, rawRequest, requestText } from '../helpers/http.js';

async function echoUpstream(t: Tap) {
  const upgrades: http.IncomingMessage[] = [];
  const server = http.createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (sock, req) => {
    upgrades.push(req);
    sock.on('message', (data, binary) => sock.send(binary ? data : `echo: ${data.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, upgrades };
}

const config = (upUrl: string) => `
server: { listen: 127.0.0.1:0 }
roles: { viewer: {} }
upstreams: { ws: { url: "${upUrl}/base" } }
routes:
  - { name: ws, match: { path: /ws/** }, upstream: ws, strip_prefix: /ws, public: true }
  - { name: secure, match: { path: /secure/** }, upstream: ws, allow: [{ roles: [viewer] }] }
  - { name: static, match: { path: /static }, public: true, respond: { body: x } }
`;

function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
  });
}

function next(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
}

t.test('a WebSocket upgrade is proxied and echoes', async (t) => {
  const up = await echoUpstream(t);
  const g = await startGateway(t, config(up.url));
  const ws = await open(`${g.url.replace('http', 'ws')}/ws/chat?room=1`, { 'x-gatehouse-subject': 'admin', 'x-request-id': 'ws-req-1' });
  ws.send('hello');
  t.equal(await next(ws), 'echo: hello');
  ws.send(Buffer.alloc(100_000, 7));
  t.equal((await next(ws)).length, 100_000, 'a large binary frame goes through');
  const req = up.upgrades[0]!;
  t.equal(req.url, '/base/chat?room=1', 'strip_prefix and base path apply to upgrades');
  t.notOk('x-gatehouse-subject' in req.headers, 'X-Gatehouse-* is removed from upgrades too');
  t.equal(req.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(req.headers['x-request-id'], 'ws-req-1');
  ws.close();
  await new Promise((r) => ws.once('close', r));
  let line: string | undefined;
  for (let i = 0; i < 40 && !line; i++) {
    await new Promise((r) => setTimeout(r, 25));
    line = g.logs.find((l) => l.includes('"request_id":"ws-req-1"'));
  }
  t.match(line, /"status":101,"decision":"allow","reason":"public"/, 'recorded when the connection ends');
});

t.test('a protected WebSocket route without a token gets 401 and the upstream sees no upgrade', async (t) => {
  const up = await echoUpstream(t);
  const g = await startGateway(t, config(up.url));
  const err = (await open(`${g.url.replace('http', 'ws')}/secure/chat`).catch((e: unknown) => e)) as { status?: number };
  t.equal(err.status, 401);
  const raw = parseReply(
    await rawRequest(
      g.gw.addresses.http!.port,
      requestText(['GET /secure/chat HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']),
      3000,
    ),
  );
  t.equal(raw.status, 401);
  t.equal(raw.headers['content-type'], 'application/problem+json');
  t.match(raw.headers['www-authenticate'], /^Bearer/);
  t.ok(raw.headers['x-request-id']);
  t.equal(up.upgrades.length, 0, 'no upgrade reached the upstream');

  const nf = parseReply(await rawRequest(g.gw.addresses.http!.port, requestText(['GET /nowhere HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']), 3000));
  t.equal(nf.status, 404, 'no route → 404 for upgrades too');
  const resp = parseReply(await rawRequest(g.gw.addresses.http!.port, requestText(['GET /static HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']), 3000));
  t.equal(resp.status, 400, 'a respond route does not upgrade');
  const bad = parseReply(await rawRequest(g.gw.addresses.http!.port, requestText(['GET /ws/%2e%2e/%2e%2e/x HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']), 3000));
  t.equal(bad.status, 400, 'path rules apply to upgrades');
  t.equal(up.upgrades.length, 0);
});

t.test('a dead upstream answers an upgrade with 502', async (t) => {
  const g = await startGateway(t, config('http://127.0.0.1:1'));
  const err = (await open(`${g.url.replace('http', 'ws')}/ws/chat`).catch((e: unknown) => e)) as { status?: number };
  t.equal(err.status, 502);
  await new Promise((r) => setTimeout(r, 50));
  t.match(g.logs.find((l) => l.includes('"path":"/ws/chat"')), /"status":502,"decision":"error","reason":"upstream_unreachable"/);
});

t.test('an upstream that never answers the handshake gets 504 after the upstream timeout, not a 10-minute hang', async (t) => {
  const silent = http.createServer();
  const held: import('node:stream').Duplex[] = [];
  silent.on('upgrade', (_req, socket) => held.push(socket)); // accepted, never answered
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const up = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const g = await startGateway(t, config(up).replace(`url: "${up}/base" }`, `url: "${up}/base", timeout: 300ms }`));
  const started = Date.now();
  const err = (await open(`${g.url.replace('http', 'ws')}/ws/chat`).catch((e: unknown) => e)) as { status?: number };
  const took = Date.now() - started;
  t.equal(err.status, 504);
  t.ok(took >= 250 && took < 3000, `answered after ${took} ms (upstream timeout 300 ms)`);
  t.equal(held.length, 1, 'the upstream did get the handshake');
  await new Promise((r) => setTimeout(r, 50));
  const line = g.logs.find((l) => l.includes('"path":"/ws/chat"'));
  t.match(line, /"status":504,"decision":"error","reason":"upstream_timeout"/, 'recorded as an upstream failure, as for any request');
});

t.test('WebSocket connections are closed on shutdown', async (t) => {
  const up = await echoUpstream(t);
  const g = await startGateway(t, config(up.url));
  const ws = await open(`${g.url.replace('http', 'ws')}/ws/chat`);
  ws.send('ping');
  t.equal(await next(ws), 'echo: ping');
  const closed = new Promise<void>((r) => ws.once('close', () => r()));
  const started = Date.now();
  await g.gw.close();
  await closed;
  t.ok(Date.now() - started < 2000, 'closed promptly, not after drain_timeout');
  t.equal(g.gw.inflight, 0);
});
