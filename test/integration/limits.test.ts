import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { startGateway, type Tap } from '../helpers/gateway.js';
import { parseReply, rawRequest, requestText, statusOf } from '../helpers/http.js';
import { startUpstream } from '../helpers/upstream.js';


async function setup(t: Tap, limits = '') {
  const up = await startUpstream(t);
  const g = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0, limits: { max_body: 1kb, max_header_size: 4kb ${limits} } }
roles: { viewer: {} }
upstreams: { app: { url: "${up.url}" } }
routes:
  - { name: open, match: { path: /** }, upstream: app, public: true }
`,
  );
  return { up, ...g, port: g.gw.addresses.http!.port };
}

t.test('ambiguous or refused requests get 400 and never reach the upstream', async (t) => {
  const { up, port, logs } = await setup(t);
  const cases: [string, string[], string?][] = [
    ['several Host headers', ['GET /a HTTP/1.1', 'Host: a.test', 'Host: b.test']],
    ['empty Host', ['GET /a HTTP/1.1', 'Host: ']],
    ['missing Host in HTTP/1.1', ['GET /a HTTP/1.1']],
    ['absolute-form target disagreeing with Host', ['GET http://evil.test/a HTTP/1.1', 'Host: a.test']],
    ['both Content-Length and Transfer-Encoding', ['POST /a HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n'],
    ['HTTP/1.0 with Transfer-Encoding', ['POST /a HTTP/1.0', 'Host: a', 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n'],
    ['several Authorization headers', ['GET /a HTTP/1.1', 'Host: a', 'Authorization: Bearer one', 'Authorization: Bearer two']],
    // The same in other spellings: the checks go by the name in any case.
    ['several Host headers, spelled otherwise', ['GET /a HTTP/1.1', 'host: a.test', 'HOST: b.test']],
    ['several Authorization headers, spelled otherwise', ['GET /a HTTP/1.1', 'Host: a', 'authorization: Bearer one', 'AUTHORIZATION: Bearer two']],
    ['both Content-Length and Transfer-Encoding, spelled otherwise', ['POST /a HTTP/1.1', 'Host: a', 'content-length: 5', 'TRANSFER-ENCODING: chunked'], '5\r\nhello\r\n0\r\n\r\n'],
    ['CONNECT', ['CONNECT a.test:443 HTTP/1.1', 'Host: a.test:443']],
    ['TRACE', ['TRACE /a HTTP/1.1', 'Host: a']],
    ['OPTIONS *', ['OPTIONS * HTTP/1.1', 'Host: a']],
    ['Upgrade: h2c', ['GET /a HTTP/1.1', 'Host: a', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA']],
    ['Upgrade: h2c without Connection: upgrade', ['GET /a HTTP/1.1', 'Host: a', 'Upgrade: h2c']],
    ['a fragment in the target', ['GET /a#b HTTP/1.1', 'Host: a']],
    ['a relative target', ['GET a/b HTTP/1.1', 'Host: a']],
  ];
  for (const [what, lines, body] of cases) {
    const raw = await rawRequest(port, requestText([...lines, 'Connection: close'].filter((l, i, a) => !(l === 'Connection: close' && a.some((x) => x.startsWith('Connection: U')))), body ?? ''), 3000);
    const p = parseReply(raw);
    t.equal(p.status, 400, `${what} → 400`);
    t.ok(p.headers['x-request-id'], `${what}: X-Request-Id`);
    if (p.headers['content-type']) t.equal(p.headers['content-type'], 'application/problem+json', `${what}: problem+json`);
  }
  t.equal(up.requests.length, 0, 'nothing reached the upstream');
  t.ok(logs.filter((l) => l.includes('"status":400')).length >= cases.length, 'each refusal leaves a log line');
});

t.test('HTTP/1.0 without Host is accepted', async (t) => {
  const { up, port } = await setup(t);
  const p = parseReply(await rawRequest(port, 'GET /old HTTP/1.0\r\n\r\n', 3000));
  t.equal(p.status, 200);
  t.equal(up.requests[0]?.url, '/old');
});

t.test('oversized headers get 431', async (t) => {
  const { up, port } = await setup(t);
  const raw = await rawRequest(port, requestText(['GET /a HTTP/1.1', 'Host: a', `X-Big: ${'x'.repeat(8000)}`, 'Connection: close']), 3000);
  t.equal(statusOf(raw), 431);
  const p = parseReply(raw);
  t.equal(p.headers['content-type'], 'application/problem+json');
  t.equal((JSON.parse(p.body) as { code: string }).code, 'GW_HEADERS_TOO_LARGE');
  const many = await rawRequest(port, requestText(['GET /a HTTP/1.1', 'Host: a', ...Array.from({ length: 200 }, (_, i) => `X-H${i}: ${'y'.repeat(30)}`), 'Connection: close']), 3000);
  t.equal(statusOf(many), 431, 'many headers adding up past the limit');
  t.equal(up.requests.length, 0);
});

t.test('bodies over max_body get 413: declared and streamed', async (t) => {
  const { up, port, url } = await setup(t);
  const declared = parseReply(await rawRequest(port, requestText(['POST /a HTTP/1.1', 'Host: a', 'Content-Length: 5000', 'Connection: close']), 3000));
  t.equal(declared.status, 413, 'declared too large');
  t.equal((JSON.parse(declared.body) as { code: string }).code, 'GW_PAYLOAD_TOO_LARGE');

  // Streamed (chunked) past the limit: refused once it crosses it, the upstream gets no complete request.
  const streamed = await new Promise<number>((resolve) => {
    const req = http.request(`${url}/a`, { method: 'POST', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(-1));
    let sent = 0;
    const pump = () => {
      while (sent < 64 * 1024) {
        sent += 512;
        if (!req.write(Buffer.alloc(512, 'a'))) return req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  t.equal(streamed, 413, 'streamed body over max_body → 413');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(up.requests.length, 0, 'the upstream never got a complete oversized request');

  const exact = await fetch(`${url}/a`, { method: 'POST', body: Buffer.alloc(1024, 'b') });
  t.equal(exact.status, 200, 'a body of exactly max_body passes');
  t.equal(up.requests.at(-1)?.body.length, 1024);
});

t.test('a slow client is answered 408 or closed within about a second of headers_timeout', async (t) => {
  const { port } = await setup(t, ', headers_timeout: 1s, request_timeout: 2s');
  const started = Date.now();
  const outcome = await new Promise<{ raw: string; ms: number }>((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let raw = '';
    sock.on('data', (d) => (raw += d.toString('latin1')));
    sock.on('close', () => resolve({ raw, ms: Date.now() - started }));
    sock.on('error', () => {});
    sock.write('GET /a HTTP/1.1\r\nHost: a\r\n');
    // Trickle a header line every 200 ms, never finishing the head.
    const iv = setInterval(() => sock.writable && sock.write('X-Slow: 1\r\n'), 200);
    sock.on('close', () => clearInterval(iv));
    setTimeout(() => sock.destroy(), 5000);
  });
  t.comment(`slow client closed after ${outcome.ms} ms, reply: ${JSON.stringify(outcome.raw.slice(0, 40))}`);
  t.ok(outcome.ms < 2600, `closed after ${outcome.ms} ms for a 1 s headers_timeout`);
  if (outcome.raw) t.equal(statusOf(outcome.raw), 408, 'answered 408');
});

t.test('a body that trickles past request_timeout is cut within about a second, and the upstream request aborted', async (t) => {
  const { port, gw } = await setup(t, ', headers_timeout: 1s, request_timeout: 2s');
  const started = Date.now();
  const ms = await new Promise<number>((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => {});
    sock.on('close', () => resolve(Date.now() - started));
    sock.write('POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 500\r\n\r\n');
    const iv = setInterval(() => sock.writable && sock.write('x'), 200);
    sock.on('close', () => clearInterval(iv));
    setTimeout(() => sock.destroy(), 8000);
  });
  t.comment(`slow body cut after ${ms} ms for a 2 s request_timeout`);
  t.ok(ms >= 1900 && ms < 3600, `cut after ${ms} ms`);
  for (let i = 0; i < 40 && gw.inflight > 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(gw.inflight, 0, 'nothing left in flight');
});
