/**
 * Upstream credentials (DESIGN.md §4 `credentials:`): static bearer, basic
 * or headers, and OAuth 2.0 client credentials with a token manager.
 */
import type { Logger } from 'pino';
import type { CredentialsConfig } from '../config/schema.js';
import type { SecretReader } from '../config/secret.js';
import type { Metrics } from '../metrics/metrics.js';
import { OAuth2TokenManager } from './oauth2.js';
import { RESERVED_PARAMS, type TokenRequestConfig } from './token-request.js';
import type { UpstreamCredentials } from './upstream.js';

export interface CredentialDeps {
  secrets: SecretReader;
  log: Logger;
  metrics: Metrics;
  mode: 'serve' | 'offline';
}

/** Static credentials: the same header pairs on every request. */
function staticCredentials(upstream: string, pairs: string[]): UpstreamCredentials {
  for (let i = 1; i < pairs.length; i += 2) {
    // Checked here so that a bad secret is a load error, not a 502 on every request.
    if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(pairs[i] as string)) throw new Error(`upstream "${upstream}": the ${pairs[i - 1]} credential contains a character not allowed in an HTTP header`);
  }
  return { headers: () => pairs };
}

export function buildCredentials(upstream: string, cfg: CredentialsConfig, deps: CredentialDeps): UpstreamCredentials {
  if (cfg.bearer !== undefined) return staticCredentials(upstream, ['authorization', `Bearer ${deps.secrets.read(cfg.bearer)}`]);
  if (cfg.basic !== undefined) {
    const pw = deps.secrets.read(cfg.basic.password);
    // RFC 7617 §2: a user-id containing a colon cannot be sent.
    if (cfg.basic.username.includes(':')) throw new Error(`upstream "${upstream}": a basic username may not contain ":"`);
    return staticCredentials(upstream, ['authorization', `Basic ${Buffer.from(`${cfg.basic.username}:${pw}`).toString('base64')}`]);
  }
  if (cfg.headers !== undefined) {
    const pairs: string[] = [];
    for (const [k, v] of Object.entries(cfg.headers)) pairs.push(k.toLowerCase(), deps.secrets.read(v));
    return staticCredentials(upstream, pairs);
  }
  const o = cfg.oauth2_client_credentials;
  if (o === undefined) throw new Error(`upstream "${upstream}": expected one of oauth2_client_credentials, bearer, basic or headers`);
  const tokenUrl = new URL(o.token_url);
  if (deps.mode === 'serve' && tokenUrl.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(tokenUrl.hostname)) {
    deps.log.warn({ upstream, token_url: tokenUrl.origin }, 'token_url is plain http: the client secret and tokens travel unencrypted');
  }
  return new OAuth2TokenManager({
    upstream,
    request: tokenRequestConfig(upstream, o, deps.secrets),
    refreshMarginMs: o.refresh_margin,
    retryOn: o.retry_on,
    retryBodyLimit: o.retry_body_limit,
    log: deps.log,
    metrics: deps.metrics,
  });
}

type OAuth2Config = NonNullable<CredentialsConfig['oauth2_client_credentials']>;

/** The token request settings of an `oauth2_client_credentials` block, with the secret resolved. */
export function tokenRequestConfig(upstream: string, o: OAuth2Config, secrets: SecretReader): TokenRequestConfig {
  for (const k of Object.keys(o.params)) {
    if (RESERVED_PARAMS.has(k)) throw new Error(`upstream "${upstream}": params may not set "${k}"; use the key of its own (client_id, client_secret, scopes, audience)`);
  }
  return {
    tokenUrl: o.token_url,
    clientId: o.client_id,
    clientSecret: secrets.read(o.client_secret),
    clientAuth: o.client_auth,
    scopes: o.scopes,
    audience: o.audience,
    params: o.params,
    timeoutMs: o.token_timeout,
  };
}
