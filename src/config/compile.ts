/**
 * Config → frozen Runtime: routes with their stage lists, upstream pools,
 * authenticators and rules, all built once at load (never per request).
 */
import { BlockList, isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Authenticator } from '../authn/authenticator.js';
import { buildAuthenticators } from '../authn/index.js';
import { compileAllow, RoleGraph, type Authorizer } from '../authz/rules.js';
import { authenticateStage } from '../pipeline/authenticate.js';
import { authorizeStage } from '../pipeline/authorize.js';
import type { RequestContext } from '../pipeline/context.js';
import { proxyStage } from '../pipeline/proxy.js';
import { respondStage } from '../pipeline/respond.js';
import { compileHost, compilePathPattern, patternCovers } from '../routing/router.js';
import { buildCredentials } from '../upstream/credentials.js';
import { Upstream } from '../upstream/upstream.js';
import { ConfigError, type ConfigIssue, type ConfigSource } from './load.js';
import type { ResourceScope } from './resources.js';
import { SecretReader } from './secret.js';
import type { Stamps } from '../util/file-poll.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Config, RouteConfig } from './schema.js';

export type Stage = (ctx: RequestContext) => void | Promise<unknown>;

export interface CompiledRoute {
  readonly name: string;
  readonly index: number;
  readonly pattern: string;
  readonly matchHost: ((host: string) => boolean) | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly matchPath: (path: string) => boolean;
  readonly upstream: Upstream | undefined;
  readonly respond: { status: number; headers: Record<string, string>; body: Buffer } | undefined;
  readonly stripPrefix: string | undefined;
  readonly team: string | undefined;
  readonly public: boolean;
  readonly forwardAuthorization: boolean;
  readonly authenticators: readonly Authenticator[];
  readonly authorize: Authorizer | undefined;
  /** authenticate + authorize (empty for public routes): shared by HTTP and WebSocket requests. */
  readonly guards: readonly Stage[];
  /** guards + the terminal stage (proxy or respond). */
  readonly stages: readonly Stage[];
}

export interface Limits {
  maxBody: number;
  maxHeaderSize: number;
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  maxConnections: number | undefined;
  drainTimeout: number;
}

export interface Runtime {
  readonly config: Config;
  readonly source: ConfigSource;
  readonly routes: readonly CompiledRoute[];
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly authenticators: ReadonlyMap<string, Authenticator>;
  readonly roles: RoleGraph;
  readonly trustedProxies: BlockList | undefined;
  readonly limits: Limits;
  readonly warnings: readonly ConfigIssue[];
  /** Which authenticators are not ready yet (empty when ready). */
  notReady(): string[];
}

export interface CompileDeps {
  scope: ResourceScope;
  /** Receives the stamps of the secret files read (see util/file-poll.ts). */
  stamps?: Stamps;
  log: Logger;
  metrics: Metrics;
  mode: 'serve' | 'offline';
}

function trustedList(cidrs: readonly string[]): BlockList | undefined {
  if (cidrs.length === 0) return undefined;
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

function shadowWarnings(config: Config, source: ConfigSource): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const routes = config.routes;
  routes.forEach((b, j) => {
    for (let i = 0; i < j; i++) {
      const a = routes[i] as RouteConfig;
      const hostCovers = a.match.host === undefined || a.match.host.toLowerCase() === b.match.host?.toLowerCase();
      const methodsCover = a.match.methods === undefined || (b.match.methods !== undefined && b.match.methods.every((m) => a.match.methods!.includes(m)));
      if (hostCovers && methodsCover && patternCovers(a.match.path, b.match.path)) {
        out.push(source.issue(['routes', j, 'match'], `route "${b.name}" can never match: route "${a.name}" (routes[${i}]) comes first and covers it`));
        break;
      }
    }
    if (b.public && b.allow) out.push(source.issue(['routes', j, 'allow'], `route "${b.name}" is public: its allow rules are not checked`));
  });
  return out;
}

/** Compiles a validated configuration; throws ConfigError with file:line for what only shows now. */
export function compile(config: Config, source: ConfigSource, deps: CompileDeps): Runtime {
  const issues: ConfigIssue[] = [];
  const roles = new RoleGraph(config.roles);

  const upstreams = new Map<string, Upstream>();
  const secrets = new SecretReader(source.baseDir, deps.stamps);
  for (const [name, cfg] of Object.entries(config.upstreams)) {
    try {
      // The secrets' digest is part of the spec: a rotated `{ file }` secret gets new credentials on reload.
      const spec = JSON.stringify(cfg) + secrets.digest(cfg.credentials);
      const create = () => new Upstream(name, cfg, cfg.credentials && buildCredentials(name, cfg.credentials, { secrets, log: deps.log, metrics: deps.metrics, mode: deps.mode }));
      const up = deps.scope.acquire(`upstream:${name}`, spec, create, (u) => u.close());
      upstreams.set(name, up);
    } catch (err) {
      issues.push(source.issue(['upstreams', name, 'credentials'], (err as Error).message));
    }
  }

  let authenticators = new Map<string, Authenticator>();
  try {
    authenticators = buildAuthenticators({ config, source, scope: deps.scope, log: deps.log, metrics: deps.metrics, mode: deps.mode });
  } catch (err) {
    if (err instanceof ConfigError) issues.push(...err.issues);
    else issues.push(source.issue([], (err as Error).message));
  }

  const routes: CompiledRoute[] = config.routes.map((r, index) => {
    const names = r.auth ?? ['service_account', ...Object.keys(config.issuers)];
    const list = names.map((n) => authenticators.get(n)).filter((a): a is Authenticator => a !== undefined);
    const authorize = r.public || !r.allow ? undefined : compileAllow(r.allow, r.team, roles);
    const guards: Stage[] = r.public ? [] : [authenticateStage, authorizeStage];
    const terminal: Stage = r.respond ? respondStage : proxyStage;
    return Object.freeze({
      name: r.name,
      index,
      pattern: r.match.path,
      matchHost: compileHost(r.match.host),
      methods: r.match.methods ? new Set(r.match.methods) : undefined,
      matchPath: compilePathPattern(r.match.path),
      upstream: r.upstream === undefined ? undefined : upstreams.get(r.upstream),
      respond: r.respond ? { status: r.respond.status, headers: r.respond.headers, body: Buffer.from(r.respond.body) } : undefined,
      stripPrefix: r.strip_prefix,
      team: r.team,
      public: r.public,
      forwardAuthorization: r.forward_authorization,
      authenticators: Object.freeze(list),
      authorize,
      guards: Object.freeze(guards),
      stages: Object.freeze([...guards, terminal]),
    });
  });

  if (issues.length) throw new ConfigError(issues);
  const l = config.server.limits;
  return Object.freeze({
    config,
    source,
    routes: Object.freeze(routes),
    upstreams,
    authenticators,
    roles,
    trustedProxies: trustedList(config.server.trusted_proxies),
    limits: {
      maxBody: l.max_body,
      maxHeaderSize: l.max_header_size,
      headersTimeout: l.headers_timeout,
      requestTimeout: l.request_timeout,
      keepAliveTimeout: l.keepalive_timeout,
      maxConnections: l.max_connections,
      drainTimeout: l.drain_timeout,
    },
    warnings: shadowWarnings(config, source),
    notReady: () => [...authenticators.values()].filter((a) => a.ready && !a.ready()).map((a) => a.name),
  });
}
