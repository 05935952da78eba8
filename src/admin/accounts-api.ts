/**
 * The accounts admin API (DESIGN.md §6): the operations of `gatehouse
 * accounts` as JSON over HTTP on the admin listener, for a principal holding
 * the `gatehouse-admin` role as a global role (directly or through
 * `includes`; a team role does not count). It is served as a route of its own, "gatehouse-admin", by the
 * gateway's own pipeline: every authenticator the configuration has (service
 * accounts and each JWT issuer), the same 401/403 problem responses, one
 * audit record, log line and metric per request, and for each change an
 * account event whose principal is the caller (the CLI's events name the OS
 * user instead).
 *
 *   GET    /admin/accounts               the accounts (as `accounts list --json`)
 *   POST   /admin/accounts               create: {name, role, teams?, description?, expires_in?}
 *                                        → 201 {name, key_id, expires, token}: the token, once
 *   GET    /admin/accounts/NAME          one account (as `accounts show --json`)
 *   POST   /admin/accounts/NAME/rotate   {grace?, expires_in?} → the new token, once
 *   POST   /admin/accounts/NAME/revoke   → {name, revoked: [key ids]}
 *   DELETE /admin/accounts/NAME          → {name, deleted: true}
 *
 * Changes go through the store's update() (lock, fresh read, atomic write),
 * as the CLI's do, so API and CLI can be used side by side. Responses are
 * never cached (no-store); a token appears in no log, audit record or error.
 */
import type { GatewayPlugin } from '../app.js';
import { AccountError, createAccount, deleteAccount, describeAccount, parseTeams, revokeAccount, rotateToken, type AccountPolicy } from '../authn/accounts.js';
import type { Principal } from '../authn/authenticator.js';
import { ServiceAccountAuthenticator } from '../authn/service-account.js';
import { StoreError, type TokenStore } from '../authn/token-store.js';
import type { AuditLog } from '../audit/audit-log.js';
import { auditLogOf } from '../audit/plugin.js';
import { compileAllow } from '../authz/rules.js';
import type { CompiledRoute, Runtime } from '../config/compile.js';
import { GatewayError } from '../errors.js';
import { authenticateStage } from '../pipeline/authenticate.js';
import { authorizeStage } from '../pipeline/authorize.js';
import type { RequestContext } from '../pipeline/context.js';
import { createRequestHandler } from '../pipeline/run.js';
import { parseDuration } from '../util/units.js';

/** The role that grants the admin API. */
export const ADMIN_ROLE = 'gatehouse-admin';
/** The route name in audit records, logs and metrics. */
export const ADMIN_ROUTE = 'gatehouse-admin';
const PREFIX = '/admin/accounts';
const MAX_BODY = 64 * 1024;

/** What the stage needs of the gateway: where account events go. */
interface ApiHost {
  events(): AuditLog | undefined;
}

/** The admin API's route per configuration snapshot: built once per snapshot (a reload brings new authenticators and roles). */
function adminRoutes(host: ApiHost): (rt: Runtime) => CompiledRoute {
  const routes = new WeakMap<Runtime, CompiledRoute>();
  const terminal = (ctx: RequestContext) => accountsStage(ctx, host);
  return (rt) => {
    let r = routes.get(rt);
    if (r === undefined) {
      const guards = [authenticateStage, authorizeStage];
      r = Object.freeze({
        name: ADMIN_ROUTE,
        index: -1,
        pattern: `${PREFIX}/**`,
        matchHost: undefined,
        methods: undefined,
        matchPath: (p: string) => p === PREFIX || p.startsWith(`${PREFIX}/`),
        upstream: undefined,
        respond: undefined,
        stripPrefix: undefined,
        team: undefined,
        public: false,
        forwardAuthorization: false,
        authenticators: [...rt.authenticators.values()],
        authorize: compileAllow([{ roles: [ADMIN_ROLE] }], undefined, rt.roles),
        guards,
        stages: [...guards, terminal],
      });
      routes.set(rt, r);
    }
    return r;
  };
}

export const accountsApiPlugin: GatewayPlugin = (gw) => {
  const handle = createRequestHandler(gw, adminRoutes({ events: () => auditLogOf(gw) }));
  gw.adminRoutes.set(PREFIX, async (req, res) => handle(req, res));
};

function bad(reason: string, detail: string): GatewayError {
  return new GatewayError('GW_BAD_REQUEST', detail, { reason, detail });
}

function refusal(err: unknown): unknown {
  if (err instanceof AccountError) {
    if (err.kind === 'unknown') return new GatewayError('GW_NOT_FOUND', err.message, { reason: 'account_unknown', detail: err.message });
    if (err.kind === 'exists') return new GatewayError('GW_CONFLICT', err.message, { reason: 'account_exists', detail: err.message });
    return bad('account_invalid', err.message);
  }
  // The store's own trouble (unreadable, locked) is the operator's, not the caller's: generic 503.
  if (err instanceof StoreError) return new GatewayError('GW_AUTH_UNAVAILABLE', `token store: ${err.message}`, { reason: 'store_unavailable', cause: err });
  return err;
}

/** The request body as a JSON object (an empty body is `{}`); at most MAX_BODY bytes. */
async function jsonBody(ctx: RequestContext): Promise<Record<string, unknown>> {
  const req = ctx.req;
  if (ctx.expectContinue) {
    ctx.expectContinue = false;
    ctx.res?.writeContinue();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new GatewayError('GW_PAYLOAD_TOO_LARGE', `admin request body over ${MAX_BODY} bytes`, { reason: 'body_too_large' });
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw bad('body_invalid', 'the body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('body_invalid', 'the body must be a JSON object');
  return v as Record<string, unknown>;
}

/** Reads the named fields of a body, refusing any other (as gateway.yaml refuses unknown keys). */
function fields<K extends string>(body: Record<string, unknown>, spec: Record<K, 'string' | 'teams'>, required: readonly NoInfer<K>[] = []) {
  const out: Partial<Record<K, unknown>> = {};
  for (const [k, v] of Object.entries(body)) {
    const kind = (spec as Record<string, 'string' | 'teams' | undefined>)[k];
    if (kind === undefined) throw bad('body_invalid', `unknown field "${k}" (expected ${Object.keys(spec).join(', ')})`);
    if (kind === 'string' && typeof v !== 'string') throw bad('body_invalid', `"${k}" must be a string`);
    if (kind === 'teams' && !(Array.isArray(v) && v.every((x) => typeof x === 'string')) && !(typeof v === 'object' && v !== null && Object.values(v).every((x) => x === null || typeof x === 'string'))) {
      throw bad('body_invalid', `"${k}" must be a list such as ["finance:operator", "ops"] or an object such as {"finance": "operator", "ops": null}`);
    }
    out[k as K] = v;
  }
  for (const k of required) if (out[k] === undefined) throw bad('body_invalid', `"${k}" is required`);
  for (const k of ['expires_in', 'grace'] as const) {
    const v = out[k as K];
    if (typeof v === 'string' && parseDuration(v) === undefined) throw bad('body_invalid', `"${k}": expected a duration such as "6mo", "12mo", "24mo", "30d" or "1h", got "${v}"`);
  }
  return out;
}

/** Teams as the CLI's --team list, or as the store's own object form. */
function teamValues(v: unknown): string[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v as string[];
  return Object.entries(v as Record<string, string | null>).map(([team, role]) => (role === null ? team : `${team}:${role}`));
}

function send(ctx: RequestContext, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const res = ctx.res!;
  const text = JSON.stringify(body);
  ctx.status = status;
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(text)), 'x-request-id': ctx.id });
  res.end(ctx.method === 'HEAD' ? undefined : text);
}

function storeOf(rt: Runtime): TokenStore {
  const a = rt.authenticators.get('service_account');
  if (!(a instanceof ServiceAccountAuthenticator)) throw new GatewayError('GW_NOT_FOUND', 'no token store is configured', { reason: 'store_unavailable' });
  return a.store;
}

/** Who made a change, for its audit event: the caller, never its token. */
function actor(p: Principal): Record<string, string> {
  return { kind: p.kind, subject: p.subject, ...(p.keyId !== undefined ? { key_id: p.keyId } : {}), ...(p.issuer !== undefined ? { issuer: p.issuer } : {}) };
}

function allow(ctx: RequestContext, methods: readonly string[]): void {
  if (!methods.includes(ctx.method)) throw new GatewayError('GW_METHOD_NOT_ALLOWED', `${ctx.method} ${ctx.path}`, { reason: 'method_not_allowed', headers: { allow: methods.join(', ') } });
}

/** The terminal stage: the account operation the path and method name. */
async function accountsStage(ctx: RequestContext, host: ApiHost): Promise<void> {
  const rt = ctx.runtime;
  const [name, action, ...extra] = ctx.path.slice(PREFIX.length).split('/').filter(Boolean);
  if (extra.length > 0 || (action !== undefined && action !== 'rotate' && action !== 'revoke')) throw new GatewayError('GW_NOT_FOUND', `no admin resource ${ctx.path}`, { reason: 'no_route' });
  const store = storeOf(rt);
  const policy: AccountPolicy = { prefix: rt.config.accounts.token_prefix, maxLifetime: rt.config.accounts.max_lifetime, roles: new Set(Object.keys(rt.config.roles)) };
  const event = (e: string, f: Record<string, unknown>) => host.events()?.event(e, { request_id: ctx.id, principal: actor(ctx.principal!), ...f });
  const now = new Date();
  try {
    if (name === undefined) {
      allow(ctx, ['GET', 'HEAD', 'POST']);
      if (ctx.method !== 'POST') return send(ctx, 200, store.current().accounts.map((a) => describeAccount(a, now.getTime())));
      const b = fields(await jsonBody(ctx), { name: 'string', role: 'string', teams: 'teams', description: 'string', expires_in: 'string' }, ['name', 'role']);
      const teams = parseTeams(teamValues(b.teams), policy.roles);
      const input = { name: b.name as string, role: b.role as string, teams, description: (b.description as string | undefined) ?? '', expiresIn: (b.expires_in as string | undefined) ?? '12mo' };
      const r = await store.update((data) => createAccount(data, input, policy, now));
      event('account.created', { account: r.account.name, key_id: r.keyId, role: r.account.role, teams: r.account.teams, expires: r.expires });
      return send(ctx, 201, { name: r.account.name, key_id: r.keyId, expires: r.expires, token: r.token }, { location: `${PREFIX}/${r.account.name}` });
    }
    if (action === undefined) {
      allow(ctx, ['GET', 'HEAD', 'DELETE']);
      if (ctx.method === 'DELETE') {
        const a = await store.update((data) => deleteAccount(data, name));
        event('account.deleted', { account: a.name, key_ids: a.tokens.map((t) => t.key_id) });
        return send(ctx, 200, { name: a.name, deleted: true });
      }
      const a = store.current().account(name);
      if (!a) throw new AccountError(`unknown account "${name}"`, 'unknown');
      return send(ctx, 200, describeAccount(a, now.getTime()));
    }
    allow(ctx, ['POST']);
    if (action === 'rotate') {
      const b = fields(await jsonBody(ctx), { grace: 'string', expires_in: 'string' });
      const r = await store.update((data) => rotateToken(data, name, { grace: b.grace as string | undefined, expiresIn: (b.expires_in as string | undefined) ?? '12mo' }, policy, now));
      const previous = r.previous.map((p) => ({ key_id: p.keyId, until: p.until }));
      event('token.rotated', { account: r.account.name, key_id: r.keyId, expires: r.expires, previous });
      return send(ctx, 200, { name: r.account.name, key_id: r.keyId, expires: r.expires, token: r.token, previous });
    }
    fields(await jsonBody(ctx), {});
    const ids = await store.update((data) => revokeAccount(data, name, now));
    for (const id of ids) event('token.revoked', { account: name, key_id: id, reason: 'revoked_by_operator' });
    return send(ctx, 200, { name, revoked: ids });
  } catch (err) {
    throw refusal(err);
  }
}
