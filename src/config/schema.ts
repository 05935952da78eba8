/**
 * The zod schema of gateway.yaml (DESIGN.md §4). Unknown keys are errors
 * (strictObject everywhere); durations and sizes are converted here, so that
 * the rest of the code only ever sees milliseconds and bytes.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration, parseListen, parseSize } from '../util/units.js';

export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const name = (what: string) =>
  z.string().regex(NAME, `expected a ${what} name of letters, digits, ".", "_" or "-" (at most 64 characters)`);

export const duration = z
  .string({ error: 'expected a duration such as "500ms", "30s", "5m", "12h", "90d" or "6mo"' })
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as "500ms", "30s", "5m", "12h", "90d" or "6mo", got "${text}"` });
      return z.NEVER;
    }
    return ms;
  });

export const size = z
  .string({ error: 'expected a size such as "64kb" or "10mb"' })
  .transform((text, ctx) => {
    const bytes = parseSize(text);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as "64kb" or "10mb", got "${text}"` });
      return z.NEVER;
    }
    return bytes;
  });

const listen = z
  .string({ error: 'expected an address "host:port", e.g. "0.0.0.0:8080"' })
  .transform((text, ctx) => {
    const parsed = parseListen(text);
    if (!parsed) {
      ctx.addIssue({ code: 'custom', message: `expected an address "host:port", e.g. "0.0.0.0:8080", got "${text}"` });
      return z.NEVER;
    }
    return parsed;
  });

const cidr = z.string().refine(
  (text) => {
    const [addr, bits, extra] = text.split('/');
    if (extra !== undefined || !addr) return false;
    const family = isIP(addr);
    if (family === 0) return false;
    if (bits === undefined) return true;
    const n = Number(bits);
    return /^\d+$/.test(bits) && n <= (family === 4 ? 32 : 128);
  },
  { message: 'expected an IP address or CIDR such as "10.0.0.0/8"' },
);

/** A secret: a string (usually `${VAR}`) or `{ file: path }`. */
export const secret = z.union([z.string().min(1, 'expected a non-empty secret'), z.strictObject({ file: z.string().min(1) })], {
  error: 'expected a secret: a string such as "${VAR}" or { file: path }',
});
export type SecretSource = z.infer<typeof secret>;

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an absolute http:// or https:// URL' });

const limits = z
  .strictObject({
    headers_timeout: duration.prefault('10s'),
    request_timeout: duration.prefault('60s'),
    keepalive_timeout: duration.prefault('5s'),
    max_body: size.prefault('10mb'),
    max_header_size: size.prefault('16kb'),
    max_connections: z.int().positive().optional(),
    drain_timeout: duration.prefault('30s'),
  })
  .prefault({});

const server = z
  .strictObject({
    listen: listen.optional(),
    tls: z
      .strictObject({
        listen,
        cert: z.string().min(1),
        key: z.string().min(1),
        client_ca: z.string().min(1).optional(),
      })
      .optional(),
    admin: listen.optional(),
    trusted_proxies: z.array(cidr).default([]),
    // Multi-process mode is not built yet: refuse it rather than accept a setting that does nothing.
    workers: z
      .literal(1, { error: 'expected 1: one process per gateway for now (workers "auto" or > 1 is not implemented yet); run several replicas behind a load balancer instead' })
      .default(1),
    limits,
  })
  .prefault({});

const role = z.strictObject({ includes: z.array(z.string()).default([]) }).prefault({});

const claimPath = z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, 'expected a claim path such as "realm_access.roles"');

const issuer = z.strictObject({
  issuer: z.string().min(1),
  jwks_uri: httpUrl.optional(),
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  algorithms: z
    .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']), {
      error: 'expected a list of asymmetric JWS algorithms (RS256, PS256, ES256, EdDSA, …); "none" and HMAC are refused',
    })
    .min(1),
  clock_skew: duration.prefault('30s'),
  max_token_age: duration.optional(),
  typ: z.string().optional(),
  claims: z
    .strictObject({
      subject: claimPath.default('sub'),
      roles: claimPath.optional(),
      teams: claimPath.optional(),
      scopes: claimPath.default('scope'),
    })
    .prefault({}),
  jwks_cooldown: duration.prefault('10s'),
  jwks_refresh: duration.prefault('5m'),
  jwks_max_stale: duration.prefault('24h'),
  jwks_timeout: duration.prefault('5s'),
});

const oauth2ClientCredentials = z.strictObject({
  token_url: httpUrl,
  client_id: z.string().min(1),
  client_secret: secret,
  client_auth: z.enum(['basic', 'body']).default('basic'),
  scopes: z.array(z.string().min(1)).default([]),
  audience: z.string().optional(),
  params: z.record(z.string(), z.string()).default({}),
  refresh_margin: duration.prefault('60s'),
  token_timeout: duration.prefault('10s'),
  retry_body_limit: size.prefault('64kb'),
  retry_on: z.array(z.union([z.literal(401), z.literal(403)])).default([401]),
});

const credentials = z
  .strictObject({
    oauth2_client_credentials: oauth2ClientCredentials.optional(),
    bearer: secret.optional(),
    basic: z.strictObject({ username: z.string().min(1), password: secret }).optional(),
    headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'expected an HTTP header name'), secret).optional(),
  })
  .refine((c) => Object.values(c).filter((v) => v !== undefined).length === 1, {
    message: 'expected exactly one of oauth2_client_credentials, bearer, basic or headers',
  });

const upstream = z.strictObject({
  url: httpUrl,
  timeout: duration.prefault('30s'),
  connect_timeout: duration.prefault('5s'),
  connections: z.int().positive().max(10_000).default(128),
  credentials: credentials.optional(),
});

const METHOD = /^[A-Z][A-Z0-9_-]*$/;
const pathPattern = z
  .string()
  .refine((p) => p.startsWith('/'), { message: 'expected a path pattern starting with "/"' })
  .refine((p) => !p.slice(0, -3).includes('**') && (!p.includes('**') || p.endsWith('/**') || p === '/**'), {
    message: 'expected "**" only as the last segment, as in "/billing/**"',
  })
  .refine((p) => p.split('/').every((s) => s === '*' || s === '**' || !s.includes('*')), {
    message: 'expected "*" to stand for a whole segment, as in "/users/*/orders"',
  });

const allowEntry = z
  .strictObject({
    roles: z.array(z.string().min(1)).min(1).optional(),
    teams: z.array(z.string().min(1)).min(1).optional(),
    scopes: z.array(z.string().min(1)).min(1).optional(),
  })
  .refine((a) => a.roles || a.teams || a.scopes, { message: 'expected at least one of roles, teams or scopes' });

const route = z.strictObject({
  name: name('route'),
  match: z.strictObject({
    host: z.string().min(1).optional(),
    path: pathPattern,
    methods: z.array(z.string().regex(METHOD, 'expected an upper-case HTTP method such as GET')).min(1).optional(),
  }),
  upstream: z.string().optional(),
  respond: z
    .strictObject({
      status: z.int().min(200).max(599).default(200),
      body: z.string().default(''),
      headers: z.record(z.string(), z.string()).default({}),
    })
    .optional(),
  strip_prefix: z
    .string()
    .regex(/^\/[^*]*[^/*]$/, 'expected a path prefix such as "/billing" (no "*", no trailing "/")')
    .optional(),
  team: z.string().min(1).optional(),
  auth: z.array(z.string().min(1)).min(1).optional(),
  allow: z.array(allowEntry).min(1).optional(),
  public: z.boolean().default(false),
  forward_authorization: z.boolean().default(false),
});

const audit = z
  .strictObject({
    file: z.string().min(1).default('./data/audit.log'),
    required: z.boolean().default(false),
    flush_interval: duration.prefault('1s'),
    max_size: size.optional(),
  })
  .prefault({});

const accounts = z
  .strictObject({
    /** Longest token lifetime; `mo`/`y` count calendar months. */
    max_lifetime: z
      .string()
      .refine((t) => parseDuration(t) !== undefined, { message: 'expected a duration such as "24mo" or "365d"' })
      .default('24mo'),
    /** How often a running gateway writes the batched last-used times of tokens. */
    last_used_interval: duration.prefault('1m'),
    token_prefix: z.string().regex(/^[a-z][a-z0-9]{1,15}$/).default('gth'),
  })
  .prefault({});

export const configSchema = z
  .strictObject({
    server,
    store: z.string().min(1).default('file:./data/accounts.json'),
    accounts,
    roles: z.record(name('role'), role).default({}),
    issuers: z.record(name('issuer'), issuer).default({}),
    upstreams: z.record(name('upstream'), upstream).default({}),
    routes: z.array(route).default([]),
    audit,
  })
  .superRefine((cfg, ctx) => {
    const roles = new Set(Object.keys(cfg.roles));
    for (const [roleName, r] of Object.entries(cfg.roles)) {
      r.includes.forEach((inc, i) => {
        if (!roles.has(inc)) {
          ctx.addIssue({ code: 'custom', path: ['roles', roleName, 'includes', i], message: `unknown role "${inc}" (declared roles: ${[...roles].join(', ') || 'none'})` });
        }
      });
    }
    const cycle = findRoleCycle(cfg.roles);
    if (cycle) ctx.addIssue({ code: 'custom', path: ['roles', cycle[0] as string], message: `role hierarchy has a cycle: ${cycle.join(' → ')}` });
    for (const [issuerName] of Object.entries(cfg.issuers)) {
      if (issuerName === 'service_account') {
        ctx.addIssue({ code: 'custom', path: ['issuers', issuerName], message: '"service_account" is reserved for the token store' });
      }
    }
    const authenticators = new Set(['service_account', ...Object.keys(cfg.issuers)]);
    const seen = new Map<string, number>();
    cfg.routes.forEach((r, i) => {
      const at = (...p: (string | number)[]) => ['routes', i, ...p];
      const first = seen.get(r.name);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: at('name'), message: `duplicate route name "${r.name}" (first used by routes[${first}])` });
      else seen.set(r.name, i);
      if (r.upstream === undefined && r.respond === undefined) {
        ctx.addIssue({ code: 'custom', path: at(), message: `route "${r.name}" needs an upstream or a respond block` });
      }
      if (r.upstream !== undefined && r.respond !== undefined) {
        ctx.addIssue({ code: 'custom', path: at('respond'), message: `route "${r.name}" has both upstream and respond; expected one` });
      }
      if (r.upstream !== undefined && !(r.upstream in cfg.upstreams)) {
        ctx.addIssue({ code: 'custom', path: at('upstream'), message: `unknown upstream "${r.upstream}" (declared upstreams: ${Object.keys(cfg.upstreams).join(', ') || 'none'})` });
      }
      if (!r.allow && !r.public) {
        ctx.addIssue({ code: 'custom', path: at(), message: `route "${r.name}" needs "allow" rules or "public: true"` });
      }
      if (r.strip_prefix !== undefined && r.upstream === undefined) {
        ctx.addIssue({ code: 'custom', path: at('strip_prefix'), message: 'strip_prefix only applies to routes with an upstream' });
      }
      r.auth?.forEach((a, j) => {
        if (!authenticators.has(a)) ctx.addIssue({ code: 'custom', path: at('auth', j), message: `unknown authenticator "${a}" (expected "service_account" or an issuer name: ${[...authenticators].join(', ')})` });
      });
      r.allow?.forEach((entry, j) =>
        entry.roles?.forEach((roleName, k) => {
          if (!roles.has(roleName)) ctx.addIssue({ code: 'custom', path: at('allow', j, 'roles', k), message: `unknown role "${roleName}" (declared roles: ${[...roles].join(', ') || 'none'})` });
        }),
      );
    });
  }, {
    // Also cross-check when the only other problems are unknown keys (the values are complete then), so that `check` reports both.
    when: (payload) => payload.issues.every((i) => i.code === 'unrecognized_keys'),
  });

function findRoleCycle(roles: Record<string, { includes: string[] }>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (r: string): string[] | undefined => {
    const s = state.get(r);
    if (s === 'done') return undefined;
    if (s === 'visiting') return [...stack.slice(stack.indexOf(r)), r];
    state.set(r, 'visiting');
    stack.push(r);
    for (const inc of roles[r]?.includes ?? []) {
      const c = visit(inc);
      if (c) return c;
    }
    stack.pop();
    state.set(r, 'done');
    return undefined;
  };
  for (const r of Object.keys(roles)) {
    const c = visit(r);
    if (c) return c;
  }
  return undefined;
}

export type Config = z.output<typeof configSchema>;
export type RouteConfig = Config['routes'][number];
export type UpstreamConfig = Config['upstreams'][string];
export type IssuerConfig = Config['issuers'][string];
export type CredentialsConfig = NonNullable<UpstreamConfig['credentials']>;
export type AllowEntry = NonNullable<RouteConfig['allow']>[number];
