/**
 * `gatehouse upstream test NAME [-c FILE] [--path /p]`: tries an upstream's
 * credentials the way the gateway would — the token request and response
 * (secrets and tokens masked) and one GET to the upstream with its status.
 * Exit 0 when a token was obtained (if any is needed) and the upstream
 * accepted it; 1 otherwise.
 */
import { request } from 'undici';
import { ConfigError, formatIssue, loadConfigFile } from '../config/load.js';
import type { UpstreamConfig } from '../config/schema.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { buildCredentials, tokenRequestConfig } from '../upstream/credentials.js';
import { SecretReader } from '../config/secret.js';
import { buildTokenRequest, requestToken, TokenError, type TokenResponse } from '../upstream/token-request.js';
import { configPath, EXIT_OK, EXIT_REFUSED, parse, UsageError, type CliIo } from './args.js';

/** First 4 characters and the length; short values show only their length. */
export function mask(value: string): string {
  return value.length >= 12 ? `${value.slice(0, 4)}…(${value.length} chars)` : `…(${value.length} chars)`;
}

const SECRET_FIELDS = new Set(['access_token', 'refresh_token', 'id_token', 'client_secret', 'client_assertion']);

function maskedForm(body: string): string {
  const form = new URLSearchParams(body);
  return [...form].map(([k, v]) => `${k}=${SECRET_FIELDS.has(k) ? mask(v) : encodeURIComponent(v)}`).join('&');
}

function maskedHeader(name: string, value: string): string {
  const m = /^(Bearer|Basic) (.*)$/i.exec(value);
  if (name.toLowerCase() === 'authorization' && m) return `${m[1]} ${mask(m[2] as string)}`;
  return mask(value);
}

function describeResponse(r: TokenResponse, lines: string[]): void {
  if (typeof r.json !== 'object' || r.json === null) {
    lines.push('  (the body is not a JSON object)');
    return;
  }
  for (const [k, v] of Object.entries(r.json as Record<string, unknown>)) {
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    lines.push(`  ${k}: ${SECRET_FIELDS.has(k) || k.endsWith('_token') ? mask(text) : text.slice(0, 200)}`);
  }
}

const USAGE = 'usage: gatehouse upstream test NAME [-c FILE] [--path /PATH]';

export async function upstreamCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { path: { type: 'string' } });
  const [sub, name, ...extra] = positionals;
  if (sub !== 'test' || name === undefined || extra.length > 0) throw new UsageError(USAGE);
  const path = values.path ?? '/';
  if (!path.startsWith('/')) throw new UsageError('--path must start with "/"');
  const file = configPath(values, io.env);
  let cfg: UpstreamConfig | undefined;
  let reader: SecretReader;
  try {
    const { config, source } = loadConfigFile(file, io.env);
    cfg = config.upstreams[name];
    reader = new SecretReader(source.baseDir);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) io.err(formatIssue(i));
      return EXIT_REFUSED;
    }
    throw err;
  }
  if (!cfg) {
    io.err(`gatehouse upstream test: no upstream "${name}" in ${file}`);
    return EXIT_REFUSED;
  }

  const lines: string[] = [];
  const secrets: string[] = [];
  let credHeaders: string[] = [];
  let ok = true;
  const creds = cfg.credentials;
  const kind = creds ? (Object.keys(creds).find((k) => (creds as Record<string, unknown>)[k] !== undefined) ?? 'none') : 'none';
  lines.push(`upstream "${name}": ${cfg.url} (credentials: ${kind})`);

  if (creds?.oauth2_client_credentials) {
    const o = creds.oauth2_client_credentials;
    const trc = tokenRequestConfig(name, o, reader);
    secrets.push(trc.clientSecret);
    const req = buildTokenRequest(trc);
    lines.push('', 'token request', `  POST ${req.url}`);
    for (const [k, v] of Object.entries(req.headers)) lines.push(`  ${k}: ${k === 'authorization' ? maskedHeader(k, v) : v}`);
    lines.push(`  body: ${maskedForm(req.body)}`);
    try {
      const { token, response } = await requestToken(trc);
      secrets.push(token.accessToken);
      lines.push(`token response: HTTP ${response.status} in ${response.ms} ms`);
      describeResponse(response, lines);
      if (!token.expiresInGiven) lines.push(`  (no expires_in: the gateway assumes ${token.expiresIn} s)`);
      credHeaders = ['authorization', `Bearer ${token.accessToken}`];
    } catch (err) {
      const te = err instanceof TokenError ? err : new TokenError('error', (err as Error).message);
      lines.push(`token response: FAILED (${te.result}): ${te.message}`);
      if (te.response) describeResponse(te.response, lines);
      ok = false;
    }
  } else if (creds) {
    const built = buildCredentials(name, creds, { secrets: reader, log: createLogger({ level: 'silent' }), metrics: new Metrics({ defaults: false }), mode: 'offline' });
    credHeaders = (await built.headers()).slice();
    for (let i = 1; i < credHeaders.length; i += 2) secrets.push(credHeaders[i] as string);
  }

  if (ok) {
    const url = new URL(cfg.url);
    const target = url.origin + url.pathname.replace(/\/+$/, '') + path;
    lines.push('', 'upstream request', `  GET ${target}`);
    for (let i = 0; i < credHeaders.length; i += 2) lines.push(`  ${credHeaders[i]}: ${maskedHeader(credHeaders[i] as string, credHeaders[i + 1] as string)}`);
    const started = performance.now();
    try {
      const headers: string[] = ['user-agent', 'gatehouse-upstream-test', ...credHeaders];
      const res = await request(target, { method: 'GET', headers, headersTimeout: cfg.timeout, bodyTimeout: cfg.timeout });
      await res.body.dump();
      const retryOn = new Set<number>(creds?.oauth2_client_credentials?.retry_on ?? [401]);
      lines.push(`upstream response: HTTP ${res.statusCode} in ${Math.round(performance.now() - started)} ms`);
      const ct = res.headers['content-type'];
      if (ct !== undefined) lines.push(`  content-type: ${String(ct)}`);
      const auth = res.headers['www-authenticate'];
      if (auth !== undefined) lines.push(`  www-authenticate: ${String(auth).slice(0, 200)}`);
      if (retryOn.has(res.statusCode)) {
        lines.push(`  the upstream rejected the credentials (HTTP ${res.statusCode})`);
        ok = false;
      } else if (res.statusCode >= 500) ok = false;
    } catch (err) {
      lines.push(`upstream response: FAILED: ${(err as { code?: string }).code ?? (err as Error).message}`);
      ok = false;
    }
  }
  lines.push('', ok ? 'OK' : 'FAILED');
  // Defence in depth: whatever a server echoed, no secret or token leaves unmasked.
  let text = lines.join('\n');
  for (const s of secrets) if (s.length > 0) text = text.split(s).join(mask(s));
  (ok ? io.out : io.err)(text);
  return ok ? EXIT_OK : EXIT_REFUSED;
}
