import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import type { Gateway } from '../../src/app.js';
import { startGateway } from '../helpers/gateway.js';
import { startGuardedUpstream, startTokenServer, type TokenServer } from '../helpers/oauth.js';
import { rawRequest, statusOf } from '../helpers/http.js';
import { startUpstream } from '../helpers/upstream.js';
import { until } from '../helpers/until.js';

// A client id and secret that need form-encoding (RFC 6749 §2.3.1) before Base64.
const CLIENT = { id: 'gate house:1', secret: 'S3cr3t/+&=%ü-very-secret-value' };

function config(up: string, ts: TokenServer, extra = '', route = ''): string {
  return `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
upstreams:
  api:
    url: ${up}
    timeout: 5s
    credentials:
      oauth2_client_credentials:
        token_url: ${ts.url}
        client_id: "${CLIENT.id}"
        client_secret: { file: client.secret }
${extra}
routes:
  - { name: api, match: { path: /api/** }, upstream: api, public: true, strip_prefix: /api${route} }
`;
}

const files = { 'client.secret': CLIENT.secret + '\n' };

async function tokenFetches(gw: Gateway): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await gw.metrics.upstreamTokenFetches.get()).values) out[String(v.labels.result)] = v.value;
  return out;
}

/** Every secret the test knows: none may appear in a log line or a response. */
function assertNoSecrets(t: Test, texts: string[], ts: TokenServer): void {
  const all = texts.join('\n');
  t.notOk(all.includes(CLIENT.secret), 'the client secret appears nowhere');
  t.notOk(all.includes(encodeURIComponent(CLIENT.secret)), 'nor its encoded form');
  for (const tok of ts.issued) t.notOk(all.includes(tok), 'no access token appears');
}

t.test('client_auth basic: the token request is RFC 6749 §2.3.1-encoded and the upstream receives a valid token', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts);
  const { url, logs, gw } = await startGateway(
    t,
    config(up.url, ts, `        client_auth: basic\n        scopes: [billing.read, billing.write]\n        audience: legacy-api\n        params: { resource: "urn:billing" }`),
    files,
  );
  const res = await fetch(`${url}/api/x`, { headers: { authorization: 'Bearer caller-token' } });
  const body = await res.text();
  t.equal(res.status, 200, body);
  t.equal(ts.requests.length, 1);
  const tr = ts.requests[0]!;
  t.equal(tr.auth, 'basic');
  t.equal(tr.clientId, CLIENT.id);
  t.equal(tr.clientSecret, CLIENT.secret);
  const expected = Buffer.from('gate+house%3A1:S3cr3t%2F%2B%26%3D%25%C3%BC-very-secret-value').toString('base64');
  t.equal(tr.headers.authorization, `Basic ${expected}`, 'both parts form-encoded before Base64');
  t.equal(tr.form.get('grant_type'), 'client_credentials');
  t.equal(tr.form.get('scope'), 'billing.read billing.write');
  t.equal(tr.form.get('audience'), 'legacy-api');
  t.equal(tr.form.get('resource'), 'urn:billing');
  t.notOk(tr.form.has('client_secret'), 'no secret in the body with basic');
  t.equal(up.requests[0]?.headers.authorization, `Bearer ${ts.issued[0]}`);
  t.not(up.requests[0]?.headers.authorization, 'Bearer caller-token');
  t.same(await tokenFetches(gw), { ok: 1 });
  assertNoSecrets(t, [...logs, body], ts);
});

t.test('client_auth body: client_id and client_secret go as form parameters', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts);
  const { url, logs } = await startGateway(t, config(up.url, ts, '        client_auth: body'), files);
  const res = await fetch(`${url}/api/x`);
  t.equal(res.status, 200);
  const tr = ts.requests[0]!;
  t.equal(tr.auth, 'body');
  t.equal(tr.headers.authorization, undefined);
  t.equal(tr.form.get('client_id'), CLIENT.id);
  t.equal(tr.form.get('client_secret'), CLIENT.secret);
  t.notOk(tr.form.has('scope'), 'no scope parameter without scopes');
  t.equal(up.answered.join(), '200');
  assertNoSecrets(t, [...logs, await res.text()], ts);
});

t.test('200 concurrent requests on a cold start cause exactly one token request', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  ts.mode = 'slow';
  ts.slowMs = 300;
  const up = await startGuardedUpstream(t, ts);
  const { url } = await startGateway(t, config(up.url, ts), files);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 200 });
  t.teardown(() => agent.destroy());
  const get = () =>
    new Promise<number>((resolve, reject) => {
      http
        .get(`${url}/api/c`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        })
        .on('error', reject);
    });
  const statuses = await Promise.all(Array.from({ length: 200 }, get));
  t.equal(statuses.filter((s) => s === 200).length, 200, 'all 200 succeed');
  t.equal(ts.requests.length, 1, 'one token request');
  t.equal(up.requests.length, 200);
  t.ok(up.answered.every((s) => s === 200), 'the upstream never saw a bad token');
});

t.test('a token near expiry is refreshed in the background before it lapses', async (t) => {
  const ts = await startTokenServer(t, CLIENT, { expiresIn: 2 });
  const up = await startGuardedUpstream(t, ts);
  // refresh_margin 60s is capped at half the 2 s life: the refresh starts after ~1 s.
  const { url } = await startGateway(t, config(up.url, ts), files);
  const statuses: number[] = [];
  const deadline = Date.now() + 4500;
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/api/r`);
    statuses.push(res.status);
    await res.arrayBuffer();
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(statuses.every((s) => s === 200), `every request succeeded (${statuses.length})`);
  t.ok(up.answered.every((s) => s === 200), 'the upstream never saw an expired token');
  t.ok(ts.requests.length >= 3 && ts.requests.length <= 5, `refreshed ahead of expiry (${ts.requests.length} token requests in 4.5 s of 2 s tokens)`);
  for (let i = 1; i < ts.requests.length; i++) {
    const gap = ts.requests[i]!.at - ts.requests[i - 1]!.at;
    t.ok(gap >= 800 && gap < 2000, `refresh ${i} came ${gap} ms after the previous token, before its expiry`);
  }
});

t.test('an idle upstream does not keep fetching tokens', async (t) => {
  const ts = await startTokenServer(t, CLIENT, { expiresIn: 1 });
  const up = await startGuardedUpstream(t, ts);
  const { url } = await startGateway(t, config(up.url, ts), files);
  t.equal((await fetch(`${url}/api/i`)).status, 200);
  await new Promise((r) => setTimeout(r, 2500));
  t.ok(ts.requests.length <= 2, `at most one refresh after the last use (${ts.requests.length})`);
  t.equal((await fetch(`${url}/api/i`)).status, 200, 'a lapsed token is fetched again on demand');
});

t.test('a revoked token: exactly one refresh, and one retry per rejected request; the client sees success', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts);
  const { url, gw, logs } = await startGateway(t, config(up.url, ts), files);
  t.equal((await fetch(`${url}/api/warm`)).status, 200);
  t.equal(ts.requests.length, 1);
  ts.revokeAll();
  up.requests.length = 0;
  up.answered.length = 0;
  const N = 20;
  // All N reach the upstream with the revoked token before any answer comes back.
  up.hold(N);
  const results = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const res = await fetch(`${url}/api/r${i}`);
      return { status: res.status, body: await res.text() };
    }),
  );
  t.ok(results.every((r) => r.status === 200), 'every client sees success');
  t.equal(ts.requests.length, 2, 'one refresh for all rejected requests');
  t.equal(up.answered.filter((s) => s === 401).length, N, 'each request rejected once');
  t.equal(up.answered.filter((s) => s === 200).length, N, 'each retried once');
  for (let i = 0; i < N; i++) t.equal(up.requests.filter((r) => r.url === `/r${i}`).length, 2, `request ${i} sent twice`);
  t.same(await tokenFetches(gw), { ok: 2 });
  assertNoSecrets(t, [...logs, ...results.map((r) => r.body)], ts);
});

t.test('a small POST body is kept and replayed; a large streamed POST is not retried', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts);
  const { url } = await startGateway(t, config(up.url, ts, '        retry_body_limit: 1kb'), files);
  t.equal((await fetch(`${url}/api/warm`)).status, 200);

  ts.revokeAll();
  const small = 'x'.repeat(1000);
  const res = await fetch(`${url}/api/small`, { method: 'POST', body: small, headers: { 'content-type': 'text/plain' } });
  t.equal(res.status, 200, 'the small POST succeeds after one refresh');
  const sent = up.requests.filter((r) => r.url === '/small');
  t.equal(sent.length, 2);
  t.ok(sent.every((r) => r.body.toString() === small), 'the same body both times');

  ts.revokeAll();
  const big = Buffer.alloc(256 * 1024, 'y');
  const streamed = await fetch(`${url}/api/big`, {
    method: 'POST',
    body: Readable.toWeb(Readable.from([big.subarray(0, 100_000), big.subarray(100_000)])) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  t.equal(streamed.status, 401, 'the upstream 401 passes through');
  t.match(await streamed.text(), /invalid_token/);
  const bigSent = up.requests.filter((r) => r.url === '/big');
  t.equal(bigSent.length, 1, 'not retried');
  t.equal(bigSent[0]?.body.length, big.length, 'streamed through whole');

  // The rejection still dropped the token: the next request gets a fresh one without a 401 first.
  const before = up.answered.length;
  t.equal((await fetch(`${url}/api/after`)).status, 200);
  t.same(up.answered.slice(before), [200]);
  t.equal(ts.requests.length, 3, 'warm, small POST, after');

  // A small chunked body (no Content-Length) is kept as well.
  ts.revokeAll();
  const chunkedSmall = await fetch(`${url}/api/chunked`, {
    method: 'POST',
    body: Readable.toWeb(Readable.from([Buffer.from('abc'), Buffer.from('def')])) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  t.equal(chunkedSmall.status, 200, 'a small chunked POST succeeds after one refresh');
  const chunkedSent = up.requests.filter((r) => r.url === '/chunked');
  t.equal(chunkedSent.length, 2);
  t.ok(chunkedSent.every((r) => r.body.toString() === 'abcdef' && r.headers['content-length'] === '6'));
  t.equal(ts.requests.length, 4);

  // A large body with a Content-Length is not kept either.
  ts.revokeAll();
  const sized = await fetch(`${url}/api/sized`, { method: 'PUT', body: 'z'.repeat(2048) });
  t.equal(sized.status, 401);
  t.equal(up.requests.filter((r) => r.url === '/sized').length, 1);

  // Expect: 100-continue is answered before the kept body is read.
  ts.revokeAll();
  const port = Number(new URL(url).port);
  const raw = await rawRequest(port, 'POST /api/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n', 500);
  t.match(raw, /^HTTP\/1\.1 100 Continue/);
  const done = await rawRequest(port, 'POST /api/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
  t.equal(statusOf(done), 200);
  t.ok(up.requests.filter((r) => r.url === '/expect').every((r) => r.body.toString() === 'hello'));
});

t.test('a second rejection passes to the client and nothing loops', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  // An upstream that rejects every token: wrong audience, say.
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
    res.end('nope');
  });
  const { url, logs } = await startGateway(t, config(up.url, ts), files);
  const res = await fetch(`${url}/api/x`);
  t.equal(res.status, 401, 'the second 401 is the answer');
  t.equal(await res.text(), 'nope');
  t.equal(up.requests.length, 2, 'one retry');
  t.equal(ts.requests.length, 2, 'one refresh');
  const again = await fetch(`${url}/api/x`);
  t.equal(again.status, 502, 'then the gateway backs off: fresh tokens are rejected');
  t.equal(((await again.json()) as { code: string }).code, 'GW_UPSTREAM_CREDENTIALS');
  t.equal(ts.requests.length, 2, 'no token request during the backoff');
  t.ok(logs.some((l) => l.includes('rejects freshly issued access tokens')), 'the operator is told');
  const line = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request' && l.status === 401);
  t.equal(line?.reason, 'upstream_credentials_rejected');
});

t.test('token endpoint failures give 502 GW_UPSTREAM_CREDENTIALS, fast, with backoff', async (t) => {
  t.test('down (connection refused)', async (t) => {
    const ts = await startTokenServer(t, CLIENT);
    const up = await startGuardedUpstream(t, ts);
    const downUrl = 'http://127.0.0.1:1/token';
    const { url, gw, logs } = await startGateway(t, config(up.url, { ...ts, url: downUrl }), files);
    const started = Date.now();
    const res = await fetch(`${url}/api/x`);
    t.equal(res.status, 502);
    const body = (await res.json()) as Record<string, unknown>;
    t.equal(body.code, 'GW_UPSTREAM_CREDENTIALS');
    t.notOk(JSON.stringify(body).includes('127.0.0.1:1'), 'no token endpoint detail in the body');
    const during = Date.now();
    const second = await fetch(`${url}/api/x`);
    t.equal(second.status, 502);
    t.ok(Date.now() - during < 500, 'fails fast during the backoff');
    t.ok(Date.now() - started < 3000);
    t.same(await tokenFetches(gw), { error: 1 }, 'one fetch, during the backoff no other');
    t.equal(up.requests.length, 0);
    t.ok(logs.some((l) => /upstream token request failed \(error\)/.test(l)));
  });

  t.test('slow: 502 within token_timeout', async (t) => {
    const ts = await startTokenServer(t, CLIENT);
    ts.mode = 'hang';
    const up = await startGuardedUpstream(t, ts);
    const { url, gw } = await startGateway(t, config(up.url, ts, '        token_timeout: 500ms'), files);
    const started = Date.now();
    const res = await fetch(`${url}/api/x`);
    const took = Date.now() - started;
    t.equal(res.status, 502);
    t.ok(took >= 450 && took < 1500, `answered after ${took} ms`);
    t.same(await tokenFetches(gw), { timeout: 1 });
  });

  t.test('bad client credentials (4xx)', async (t) => {
    const ts = await startTokenServer(t, { id: CLIENT.id, secret: 'another' });
    const up = await startGuardedUpstream(t, ts);
    const { url, gw, logs } = await startGateway(t, config(up.url, ts), files);
    const res = await fetch(`${url}/api/x`);
    t.equal(res.status, 502);
    const text = await res.text();
    t.same(await tokenFetches(gw), { rejected: 1 });
    const warn = logs.find((l) => l.includes('upstream token request failed'));
    t.match(warn, /"status":401/);
    t.match(warn, /"oauth_error":"invalid_client"/);
    assertNoSecrets(t, [...logs, text], ts);
  });

  t.test('5xx, then recovery after the backoff', async (t) => {
    const ts = await startTokenServer(t, CLIENT);
    ts.mode = 'error500';
    const up = await startGuardedUpstream(t, ts);
    const { url, gw } = await startGateway(t, config(up.url, ts), files);
    t.equal((await fetch(`${url}/api/x`)).status, 502);
    ts.mode = 'ok';
    t.equal((await fetch(`${url}/api/x`)).status, 502, 'still backing off');
    t.equal(ts.requests.length, 1);
    await new Promise((r) => setTimeout(r, 1100));
    t.equal((await fetch(`${url}/api/x`)).status, 200, 'recovers after the backoff');
    t.same(await tokenFetches(gw), { error: 1, ok: 1 });
  });

  t.test('garbage and a wrong token_type are invalid responses', async (t) => {
    for (const mode of ['garbage', 'bad_type'] as const) {
      const ts = await startTokenServer(t, CLIENT);
      ts.mode = mode;
      const up = await startGuardedUpstream(t, ts);
      const { url, gw } = await startGateway(t, config(up.url, ts), files);
      t.equal((await fetch(`${url}/api/x`)).status, 502, mode);
      t.same(await tokenFetches(gw), { invalid_response: 1 }, mode);
    }
  });
});

t.test('static credentials: bearer, basic and headers replace whatever the caller sent', async (t) => {
  const up = await startUpstream(t);
  const { url, logs } = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
upstreams:
  bearer: { url: ${up.url}, credentials: { bearer: "static-bearer-secret" } }
  basic: { url: ${up.url}, credentials: { basic: { username: svc, password: { file: pw.txt } } } }
  keyed: { url: ${up.url}, credentials: { headers: { X-Api-Key: "static-api-key", X-Tenant: acme } } }
routes:
  - { name: bearer, match: { path: /bearer/** }, upstream: bearer, public: true, forward_authorization: true }
  - { name: basic, match: { path: /basic/** }, upstream: basic, public: true }
  - { name: keyed, match: { path: /keyed/** }, upstream: keyed, public: true }
`,
    { 'pw.txt': 'p@ss:word\n' },
  );
  const headers = { authorization: 'Bearer caller-token', 'x-api-key': 'caller-key' };
  const bodies: string[] = [];
  for (const p of ['bearer', 'basic', 'keyed']) {
    const res = await fetch(`${url}/${p}/x`, { headers });
    t.equal(res.status, 200, p);
    bodies.push(await res.text(), JSON.stringify([...res.headers]));
  }
  const [b, ba, k] = up.requests;
  t.same(b?.rawHeaders.filter((_, i, a) => i % 2 === 0 && /^authorization$/i.test(a[i] as string)).length, 1, 'one Authorization header');
  t.equal(b?.headers.authorization, 'Bearer static-bearer-secret', 'the caller Authorization never reaches it, even with forward_authorization');
  t.equal(ba?.headers.authorization, `Basic ${Buffer.from('svc:p@ss:word').toString('base64')}`);
  t.equal(k?.headers['x-api-key'], 'static-api-key', 'the caller cannot smuggle its own key');
  t.equal(k?.headers['x-tenant'], 'acme');
  t.equal(k?.headers.authorization, undefined, 'nor its own Authorization');
  const all = [...logs, ...bodies].join('\n');
  for (const s of ['static-bearer-secret', 'p@ss:word', 'static-api-key']) t.notOk(all.includes(s), `${s} never reaches a log or the caller`);
});

t.test('a rotated { file } secret is applied: by the file watcher on its own, and by reload(); an unchanged one keeps the warm pool', async (t) => {
  const up = await startUpstream(t);
  const g = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0 }
upstreams:
  api: { url: ${up.url}, credentials: { bearer: { file: secrets/token } } }
routes:
  - { name: api, match: { path: /** }, upstream: api, public: true }
`,
    { 'secrets/token': 'first-rotating-secret\n' },
    { watchConfig: true },
  );
  const tokenFile = join(g.dir, 'secrets/token');
  const seen = async () => {
    t.equal((await fetch(`${g.url}/x`)).status, 200);
    return up.requests.at(-1)?.headers.authorization;
  };
  t.equal(await seen(), 'Bearer first-rotating-secret');

  const pool = g.gw.runtime.upstreams.get('api');
  t.equal((await g.gw.reload('test')).ok, true);
  t.equal(g.gw.runtime.upstreams.get('api'), pool, 'a reload with the same secret keeps the warm pool');

  // gateway.yaml is not touched: the secret file alone changes.
  writeFileSync(tokenFile, 'second-rotating-secret\n');
  t.ok(await until(async () => (await seen()) === 'Bearer second-rotating-secret'), 'the watcher applies the new secret');
  const line = g.logs.find((l) => l.includes('configuration reloaded') && l.includes('file changed'));
  t.match(line, /secrets\/token/, 'the log names the file that changed');

  // A secret file that vanishes is a refused reload: the last good secret keeps being sent.
  rmSync(tokenFile);
  const refused = await g.gw.reload('test');
  t.equal(refused.ok, false);
  t.match(refused.error?.message, /cannot read secret file .*secrets\/token: ENOENT/);
  t.equal(await seen(), 'Bearer second-rotating-secret');
  // ...and its return is noticed by the watcher, which watched what the refused attempt read.
  writeFileSync(tokenFile, 'third-rotating-secret');
  t.ok(await until(async () => (await seen()) === 'Bearer third-rotating-secret'), 'the recreated file is picked up');

  const all = g.logs.join('\n');
  for (const s of ['first', 'second', 'third']) t.notOk(all.includes(`${s}-rotating-secret`), `the ${s} secret never reaches the log`);
});

t.test('an upstream with credentials still passes its own errors through when they are not rejections', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts, (_req, res) => {
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end('forbidden by upstream');
  });
  const { url } = await startGateway(t, config(up.url, ts), files);
  const res = await fetch(`${url}/api/x`);
  t.equal(res.status, 403, '403 is not in retry_on by default');
  t.equal(await res.text(), 'forbidden by upstream');
  t.equal(up.requests.length, 1);
});

t.test('retry_on: [401, 403] retries a 403 too', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  let n = 0;
  const up = await startGuardedUpstream(t, ts, (_req, res) => {
    res.writeHead(++n === 2 ? 403 : 200);
    res.end(String(n));
  });
  const { url } = await startGateway(t, config(up.url, ts, '        retry_on: [401, 403]'), files);
  t.equal((await fetch(`${url}/api/x`)).status, 200);
  const res = await fetch(`${url}/api/x`);
  t.equal(res.status, 200, 'the 403 was retried with a fresh token');
  t.equal(await res.text(), '3');
  t.equal(ts.requests.length, 2);
});

t.test('a reload that keeps the upstream keeps its token; one that changes the credentials starts afresh', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  const up = await startGuardedUpstream(t, ts);
  const { url, gw, writeConfig } = await startGateway(t, config(up.url, ts), files);
  t.equal((await fetch(`${url}/api/a`)).status, 200);
  writeConfig(config(up.url, ts) + '  - { name: other, match: { path: /other }, public: true, respond: { body: hi } }\n');
  t.ok((await gw.reload('test')).ok);
  t.equal((await fetch(`${url}/api/b`)).status, 200);
  t.equal(ts.requests.length, 1, 'the token survived the reload');
  writeConfig(config(up.url, ts, '        scopes: [more]'));
  t.ok((await gw.reload('test')).ok);
  t.equal((await fetch(`${url}/api/c`)).status, 200);
  t.equal(ts.requests.length, 2, 'new settings, new token');
  t.equal(ts.requests[1]?.form.get('scope'), 'more');
});

t.test('the request log says why a credentialed request failed, without any secret', async (t) => {
  const ts = await startTokenServer(t, { id: CLIENT.id, secret: 'not-the-configured-one' });
  const up = await startGuardedUpstream(t, ts);
  const { url, logs } = await startGateway(t, config(up.url, ts), files);
  const res = await fetch(`${url}/api/x`, { headers: { authorization: 'Bearer caller-token-value' } });
  t.equal(res.status, 502);
  const text = await res.text();
  t.notOk(text.includes('api'), 'the upstream name stays out of the client body');
  const line = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.request_id !== undefined && l.status === 502);
  t.equal(line?.reason, 'upstream_token_failed');
  t.equal(line?.upstream, 'api');
  t.notOk(logs.join('\n').includes('caller-token-value'), 'nor the caller token');
  assertNoSecrets(t, [...logs, text], ts);
});

t.test('audit records and metrics name credential problems and carry no secret', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  // The upstream rejects every token: the second rejection is a credentials problem.
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(401);
    res.end();
  });
  const yaml = config(up.url, ts) + 'audit: { file: ./audit.log }\n';
  const { url, adminUrl, gw, dir, logs } = await startGateway(t, yaml, files);
  t.equal((await fetch(`${url}/api/x`, { headers: { authorization: 'Bearer caller-secret-token' } })).status, 401);
  t.equal((await fetch(`${url}/api/x`)).status, 502);
  const metrics = await (await fetch(`${adminUrl}/metrics`)).text();
  t.match(metrics, /gatehouse_upstream_errors_total\{upstream="api",kind="credentials"\} 2/);
  t.match(metrics, /gatehouse_upstream_token_fetches_total\{upstream="api",result="ok"\} 2/);
  await gw.close();
  const audit = readFileSync(join(dir, 'audit.log'), 'utf8');
  const records = audit
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.event === 'request');
  t.same(
    records.map((r) => [r.status, r.reason, r.upstream]),
    [
      [401, 'upstream_credentials_rejected', 'api'],
      [502, 'upstream_credentials_rejected', 'api'],
    ],
  );
  t.notOk(audit.includes('caller-secret-token'));
  assertNoSecrets(t, [audit, metrics, ...logs], ts);
});

t.test('a client that hangs up while the upstream token is fetched is not forwarded, and holds no upstream connection', async (t) => {
  const ts = await startTokenServer(t, CLIENT);
  ts.mode = 'slow';
  ts.slowMs = 400;
  const up = await startGuardedUpstream(t, ts);
  // Two connections to the upstream: two stuck requests would block every later one.
  const { url, gw, logs } = await startGateway(t, config(up.url, ts, '').replace('timeout: 5s', 'timeout: 5s\n    connections: 2'), files);
  const port = gw.addresses.http!.port;
  const net = await import('node:net');
  // Four callers send a request and hang up 100 ms later, while the token request is still out.
  await Promise.all(
    Array.from({ length: 4 }, () => new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write('GET /api/gone HTTP/1.1\r\nHost: api.test\r\n\r\n');
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 100);
      });
      s.on('error', () => resolve());
    })),
  );
  t.ok(await until(() => ts.issued.length === 1), 'the token arrives');
  ts.mode = 'ok';
  const started = Date.now();
  const res = await fetch(`${url}/api/after`);
  t.equal(res.status, 200, await res.text());
  t.ok(Date.now() - started < 2000, `a later request is answered at once (${Date.now() - started} ms), not after the upstream timeout`);
  t.same(up.requests.map((r) => r.url), ['/after'], 'the departed callers were not forwarded');
  const gone = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request' && l.path === '/api/gone');
  t.same(
    gone.map((l) => [l.status, l.decision, l.reason]),
    Array.from({ length: 4 }, () => [499, 'error', 'client_aborted']),
    'each departed caller is still recorded, once',
  );
});
