/**
 * A local identity provider for JWT tests: a real node:http JWKS server on
 * 127.0.0.1 port 0 serving keys generated with jose, and a token signer.
 */
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import type { Tap } from './gateway.js';

export interface TestKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function makeKey(alg: 'RS256' | 'ES256' | 'EdDSA' | 'PS256' | 'ES384', kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519', extractable: true } : { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export interface SignOptions {
  header?: Record<string, unknown>;
  /** Leave kid out of the header. */
  noKid?: boolean;
}

/** Signs claims with a test key; `exp` one hour ahead and `iat` now unless given. */
export function sign(key: TestKey, claims: JWTPayload, opts: SignOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: key.alg, ...(opts.noKid ? {} : { kid: key.kid }), ...opts.header } as { alg: string };
  return new SignJWT({ iat: now, exp: now + 3600, ...claims }).setProtectedHeader(header).sign(key.privateKey);
}

/** Signs an RS256 JWS by hand, for headers jose refuses to produce (e.g. an unknown crit). */
export function signRawRs256(key: TestKey, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${base64url.encode(JSON.stringify({ alg: 'RS256', kid: key.kid, ...header }))}.${base64url.encode(JSON.stringify(payload))}`;
  const sig = cryptoSign('sha256', Buffer.from(input), KeyObject.from(key.privateKey));
  return `${input}.${base64url.encode(sig)}`;
}

export interface JwksServer {
  url: string;
  /** The JWKS URI. */
  jwksUri: string;
  /** Keys served (mutable: rotate by replacing). */
  keys: JWK[];
  /** Requests received, by path. */
  hits: string[];
  /** Answer this way instead of serving keys (e.g. 500, garbage); undefined → serve keys. */
  mode: 'ok' | 'error' | 'garbage' | 'redirect' | 'huge' | 'hang';
  /** Stops listening and closes every connection (the "IdP is down" case). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  /** Serves an OpenID discovery document at /.well-known/openid-configuration for this issuer. */
  discovery: { issuer: string } | undefined;
}

export async function startJwks(t: Tap, keys: JWK[] = []): Promise<JwksServer> {
  let port = 0;
  const state: JwksServer = {
    url: '',
    jwksUri: '',
    keys,
    hits: [],
    mode: 'ok',
    discovery: undefined,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
    restart: () => new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r())),
  };
  const server = http.createServer((req, res) => {
    state.hits.push(req.url ?? '');
    if (req.url === '/.well-known/openid-configuration' && state.discovery) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: state.discovery.issuer, jwks_uri: state.jwksUri }));
      return;
    }
    switch (state.mode) {
      case 'error':
        res.writeHead(500).end('down');
        return;
      case 'garbage':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [not json');
        return;
      case 'redirect':
        res.writeHead(302, { location: `${state.url}/elsewhere` }).end();
        return;
      case 'huge':
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys, pad: 'x'.repeat(1_100_000) }));
        return;
      case 'hang':
        return;
      default:
        res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: state.keys }));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${port}`;
  state.jwksUri = `${state.url}/jwks.json`;
  t.teardown(() => (server.listening ? state.stop() : undefined));
  return state;
}
