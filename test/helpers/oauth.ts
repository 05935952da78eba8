/**
 * A local OAuth 2.0 token endpoint (client credentials grant) and an upstream
 * that demands its tokens, both real node:http servers on 127.0.0.1 port 0.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Tap } from './gateway.js';
import { closeOnTeardown, startUpstream, type StartedUpstream } from './upstream.js';

export interface TokenRequestSeen {
  headers: http.IncomingHttpHeaders;
  form: URLSearchParams;
  /** How the client authenticated, and as whom. */
  auth: 'basic' | 'body' | 'none';
  clientId: string | undefined;
  clientSecret: string | undefined;
  at: number;
}

export type TokenMode = 'ok' | 'slow' | 'error500' | 'busy' | 'garbage' | 'hang' | 'bad_type';

export interface TokenServer {
  url: string;
  requests: TokenRequestSeen[];
  /** Every access token issued. */
  issued: string[];
  mode: TokenMode;
  expiresIn: number;
  slowMs: number;
  /** True when the token was issued, is unexpired and not revoked. */
  valid(token: string): boolean;
  revokeAll(): void;
  server: http.Server;
}

/** Form-decoding of one part of a Basic credential (RFC 6749 §2.3.1). */
function formDecode(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

export async function startTokenServer(t: Tap, client: { id: string; secret: string }, opts: { expiresIn?: number } = {}): Promise<TokenServer> {
  const live = new Map<string, number>(); // token → expiry (ms)
  const ts: TokenServer = {
    url: '',
    requests: [],
    issued: [],
    mode: 'ok',
    expiresIn: opts.expiresIn ?? 3600,
    slowMs: 2000,
    valid(token) {
      const exp = live.get(token);
      return exp !== undefined && Date.now() < exp;
    },
    revokeAll() {
      live.clear();
    },
    server: undefined as unknown as http.Server,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      let auth: TokenRequestSeen['auth'] = 'none';
      let clientId: string | undefined;
      let clientSecret: string | undefined;
      const h = req.headers.authorization;
      if (h?.startsWith('Basic ')) {
        const raw = Buffer.from(h.slice(6), 'base64').toString('utf8');
        const i = raw.indexOf(':');
        auth = 'basic';
        clientId = formDecode(raw.slice(0, i));
        clientSecret = formDecode(raw.slice(i + 1));
      } else if (form.has('client_id')) {
        auth = 'body';
        clientId = form.get('client_id') ?? undefined;
        clientSecret = form.get('client_secret') ?? undefined;
      }
      ts.requests.push({ headers: req.headers, form, auth, clientId, clientSecret, at: Date.now() });
      const reply = () => {
        if (ts.mode === 'hang') return;
        if (ts.mode === 'error500') {
          res.writeHead(500, { 'content-type': 'text/plain' });
          return res.end('oops');
        }
        if (ts.mode === 'busy') {
          res.writeHead(503, { 'retry-after': '3' });
          return res.end();
        }
        if (ts.mode === 'garbage') {
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end('{"access_token": 42');
        }
        if (clientId !== client.id || clientSecret !== client.secret || form.get('grant_type') !== 'client_credentials') {
          res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic' });
          return res.end(JSON.stringify({ error: 'invalid_client', error_description: 'client authentication failed' }));
        }
        const token = `at_${ts.issued.length + 1}_${randomBytes(12).toString('base64url')}`;
        ts.issued.push(token);
        live.set(token, Date.now() + ts.expiresIn * 1000);
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify({ access_token: token, token_type: ts.mode === 'bad_type' ? 'mac' : 'Bearer', expires_in: ts.expiresIn, scope: form.get('scope') ?? '' }));
      };
      if (ts.mode === 'slow') setTimeout(reply, ts.slowMs);
      else reply();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closeOnTeardown(t, server);
  ts.server = server;
  ts.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  return ts;
}

export interface GuardedUpstream extends StartedUpstream {
  /** Status of each request as answered (200 or 401). */
  answered: number[];
  /** Holds the next `n` requests until all `n` have arrived, then answers them together. */
  hold(n: number): void;
}

/** An upstream that answers 401 unless the request carries a live token of `tokens`. */
export async function startGuardedUpstream(t: Tap, tokens: TokenServer, handler?: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void): Promise<GuardedUpstream> {
  const answered: number[] = [];
  let held: (() => void)[] = [];
  let holdFor = 0;
  const up = await startUpstream(t, (req, res, body) => {
    if (holdFor > 0) {
      held.push(() => answer(req, res, body));
      if (held.length < holdFor) return;
      holdFor = 0;
      const go = held;
      held = [];
      for (const f of go) f();
      return;
    }
    answer(req, res, body);
  });
  const answer = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m || !tokens.valid(m[1] as string)) {
      answered.push(401);
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
      res.end('{"error":"invalid_token"}');
      return;
    }
    answered.push(200);
    if (handler) return handler(req, res, body);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, method: req.method, bytes: body.length }));
  };
  return Object.assign(up, { answered, hold: (n: number) => void (holdFor = n) });
}
