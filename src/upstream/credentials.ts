/**
 * Upstream credentials (DESIGN.md §4 `credentials:`): static bearer, basic
 * or headers, and OAuth 2.0 client credentials with a token manager.
 */
import type { Logger } from 'pino';
import type { CredentialsConfig } from '../config/schema.js';
import { resolveSecret } from '../config/secret.js';
import type { Metrics } from '../metrics/metrics.js';
import type { UpstreamCredentials } from './upstream.js';

export interface CredentialDeps {
  baseDir: string;
  log: Logger;
  metrics: Metrics;
  mode: 'serve' | 'offline';
}

/** Static credentials: the same header pairs on every request. */
function staticCredentials(pairs: string[]): UpstreamCredentials {
  return { headers: () => pairs };
}

export function buildCredentials(upstream: string, cfg: CredentialsConfig, deps: CredentialDeps): UpstreamCredentials {
  if (cfg.bearer !== undefined) return staticCredentials(['authorization', `Bearer ${resolveSecret(cfg.bearer, deps.baseDir)}`]);
  if (cfg.basic !== undefined) {
    const pw = resolveSecret(cfg.basic.password, deps.baseDir);
    return staticCredentials(['authorization', `Basic ${Buffer.from(`${cfg.basic.username}:${pw}`).toString('base64')}`]);
  }
  if (cfg.headers !== undefined) {
    const pairs: string[] = [];
    for (const [k, v] of Object.entries(cfg.headers)) pairs.push(k.toLowerCase(), resolveSecret(v, deps.baseDir));
    return staticCredentials(pairs);
  }
  throw new Error(`upstream "${upstream}": oauth2_client_credentials is not supported yet`);
}
