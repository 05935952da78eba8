/**
 * One OAuth 2.0 client credentials token request (RFC 6749 §4.4): how it is
 * built, sent and its answer validated. Shared by the token manager and
 * `gatehouse upstream test`. Nothing here logs; errors never carry a secret.
 */
import { Agent, request, type Dispatcher } from 'undici';

/** Outcome of a token request, as counted in gatehouse_upstream_token_fetches_total{result}. */
export type TokenResult = 'ok' | 'timeout' | 'rejected' | 'error' | 'invalid_response';

export interface TokenRequestConfig {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  clientAuth: 'basic' | 'body';
  scopes: readonly string[];
  audience?: string | undefined;
  params: Readonly<Record<string, string>>;
  timeoutMs: number;
}

/** Form parameters a config may not set through `params` (they have their own keys). */
export const RESERVED_PARAMS = new Set(['grant_type', 'client_id', 'client_secret', 'scope', 'audience']);

/** The largest token response read; anything longer is not a token response. */
const MAX_RESPONSE_BYTES = 256 * 1024;

/** An access token is sent in a header: RFC 6750 §2.1 b64token, visible ASCII at least. */
const HEADER_SAFE = /^[\x21-\x7e]+$/;

/** When a response carries no expires_in (RFC 6749 §5.1 makes it optional). */
export const DEFAULT_EXPIRES_IN_S = 300;

export interface TokenHttpRequest {
  method: 'POST';
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface Token {
  accessToken: string;
  /** Lifetime in seconds, as the server said (or DEFAULT_EXPIRES_IN_S). */
  expiresIn: number;
  expiresInGiven: boolean;
  scope: string | undefined;
}

export interface TokenResponse {
  status: number;
  ms: number;
  /** The parsed JSON body when there was one (for `upstream test`, which masks it). */
  json: unknown;
}

/** A failed token request: `result` says which way it failed; the message is safe to log. */
export class TokenError extends Error {
  override name = 'TokenError';
  readonly result: Exclude<TokenResult, 'ok'>;
  readonly status: number | undefined;
  /** The OAuth `error` code (e.g. invalid_client), sanitized. */
  readonly oauthError: string | undefined;
  /** Seconds from a Retry-After header, if any. */
  readonly retryAfterS: number | undefined;
  readonly response: TokenResponse | undefined;

  constructor(
    result: Exclude<TokenResult, 'ok'>,
    message: string,
    extra: { status?: number; oauthError?: string | undefined; retryAfterS?: number | undefined; response?: TokenResponse; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.result = result;
    this.status = extra.status;
    this.oauthError = extra.oauthError;
    this.retryAfterS = extra.retryAfterS;
    this.response = extra.response;
  }
}

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 Appendix B). */
export function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}

/**
 * The HTTP request for a token. `client_auth: basic` sends
 * `Authorization: Basic base64(urlencode(id):urlencode(secret))` — RFC 6749
 * §2.3.1 form-encodes both parts before Base64; `body` sends them as form
 * parameters instead.
 */
export function buildTokenRequest(cfg: TokenRequestConfig): TokenHttpRequest {
  const form = new URLSearchParams();
  form.set('grant_type', 'client_credentials');
  if (cfg.scopes.length > 0) form.set('scope', cfg.scopes.join(' '));
  if (cfg.audience !== undefined) form.set('audience', cfg.audience);
  for (const [k, v] of Object.entries(cfg.params)) if (!RESERVED_PARAMS.has(k)) form.set(k, v);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  if (cfg.clientAuth === 'basic') {
    const pair = `${formEncode(cfg.clientId)}:${formEncode(cfg.clientSecret)}`;
    headers.authorization = `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
  } else {
    form.set('client_id', cfg.clientId);
    form.set('client_secret', cfg.clientSecret);
  }
  return { method: 'POST', url: cfg.tokenUrl, headers, body: form.toString() };
}

function sanitizeCode(v: unknown): string | undefined {
  return typeof v === 'string' && /^[\x20-\x7e]{1,64}$/.test(v) ? v.replace(/[^A-Za-z0-9._-]/g, '_') : undefined;
}

function retryAfter(h: string | string[] | undefined): number | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

/** Validates a token endpoint's 2xx JSON body (RFC 6749 §5.1). */
export function parseTokenResponse(json: unknown): Token {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TokenError('invalid_response', 'token response is not a JSON object');
  const o = json as Record<string, unknown>;
  if (typeof o.access_token !== 'string' || !HEADER_SAFE.test(o.access_token)) throw new TokenError('invalid_response', 'token response has no usable access_token');
  if (typeof o.token_type !== 'string' || o.token_type.toLowerCase() !== 'bearer') {
    throw new TokenError('invalid_response', `token response has token_type ${typeof o.token_type === 'string' ? JSON.stringify(o.token_type.slice(0, 32)) : 'missing'}, expected "Bearer"`);
  }
  let expiresIn = DEFAULT_EXPIRES_IN_S;
  let given = false;
  if (o.expires_in !== undefined && o.expires_in !== null) {
    // Some servers send the number as a string ("3599"); anything else is garbage.
    const n = typeof o.expires_in === 'number' ? o.expires_in : typeof o.expires_in === 'string' && /^\d+(\.\d+)?$/.test(o.expires_in) ? Number(o.expires_in) : NaN;
    if (!Number.isFinite(n) || n <= 0) throw new TokenError('invalid_response', 'token response has an invalid expires_in');
    expiresIn = n;
    given = true;
  }
  return { accessToken: o.access_token, expiresIn, expiresInGiven: given, scope: typeof o.scope === 'string' ? o.scope : undefined };
}

/** A dispatcher for token requests (undici's request() follows no redirects). */
export function tokenAgent(timeoutMs: number): Agent {
  return new Agent({ keepAliveTimeout: 4_000, connections: 4, connect: { timeout: timeoutMs } });
}

/**
 * Sends one token request and validates the answer. The whole exchange —
 * connect, headers, body — is bounded by `timeoutMs`. Without a dispatcher,
 * a one-off one is made and closed.
 */
export async function requestToken(cfg: TokenRequestConfig, dispatcher?: Dispatcher): Promise<{ token: Token; response: TokenResponse }> {
  if (!dispatcher) {
    const agent = tokenAgent(cfg.timeoutMs);
    try {
      return await requestToken(cfg, agent);
    } finally {
      await agent.close().catch(() => agent.destroy());
    }
  }
  const req = buildTokenRequest(cfg);
  const started = performance.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), cfg.timeoutMs);
  let status = 0;
  let text: string;
  let headers: Record<string, string | string[] | undefined> = {};
  try {
    const res = await request(req.url, {
      method: 'POST',
      headers: req.headers,
      body: req.body,
      signal: ac.signal,
      dispatcher,
      headersTimeout: cfg.timeoutMs,
      bodyTimeout: cfg.timeoutMs,
    });
    status = res.statusCode;
    headers = res.headers;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > MAX_RESPONSE_BYTES) {
        res.body.destroy();
        throw new TokenError('invalid_response', `token response larger than ${MAX_RESPONSE_BYTES} bytes`, { status });
      }
      chunks.push(chunk);
    }
    text = Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    if (err instanceof TokenError) throw err;
    const code = (err as { code?: string }).code ?? '';
    if (ac.signal.aborted || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      throw new TokenError('timeout', `token request timed out after ${cfg.timeoutMs} ms`, { cause: err });
    }
    throw new TokenError('error', `token request failed: ${code || (err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  const ms = Math.round(performance.now() - started);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const response: TokenResponse = { status, ms, json };
  if (status < 200 || status >= 300) {
    const oauthError = sanitizeCode((json as { error?: unknown } | undefined)?.error);
    const result = status >= 400 && status < 500 ? 'rejected' : 'error';
    throw new TokenError(result, `token endpoint answered HTTP ${status}${oauthError ? ` (${oauthError})` : ''}`, {
      status,
      oauthError,
      retryAfterS: retryAfter(headers['retry-after']),
      response,
    });
  }
  if (json === undefined) throw new TokenError('invalid_response', `token endpoint answered HTTP ${status} with a body that is not JSON`, { status, response });
  try {
    return { token: parseTokenResponse(json), response };
  } catch (err) {
    if (err instanceof TokenError) throw new TokenError(err.result, err.message, { status, response });
    throw err;
  }
}
