/**
 * Builds the authenticators a configuration names: `service_account` (the
 * token store) and one per JWT issuer. Each is a shared resource, so that a
 * reload keeps a warm store snapshot or JWKS cache.
 */
import type { Logger } from 'pino';
import type { ConfigSource } from '../config/load.js';
import type { ResourceScope } from '../config/resources.js';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Authenticator } from './authenticator.js';
import { jwtAuthenticators } from './jwt.js';
import { serviceAccountFactory } from './service-account.js';

export interface AuthnDeps {
  config: Config;
  source: ConfigSource;
  scope: ResourceScope;
  log: Logger;
  metrics: Metrics;
  /** `check` and `explain` compile without starting background work. */
  mode: 'serve' | 'offline';
}

/** One factory per kind of authenticator, each in its own module; it returns the authenticators it builds, by name. */
export type AuthenticatorFactory = (deps: AuthnDeps) => Map<string, Authenticator>;

const factories: readonly AuthenticatorFactory[] = [serviceAccountFactory, jwtAuthenticators];

export function buildAuthenticators(deps: AuthnDeps): Map<string, Authenticator> {
  const out = new Map<string, Authenticator>();
  for (const f of factories) for (const [k, v] of f(deps)) out.set(k, v);
  return out;
}
