/**
 * JWT bearer tokens from external identity providers (issue 4, DESIGN.md §2,
 * §4 `issuers:`, §10 "JWT"): one authenticator per configured issuer.
 *
 * An authenticator claims a token only when it is a compact JWS whose
 * (unverified) `iss` is its issuer; then everything is verified strictly for
 * that issuer: algorithm allowlist, key from the issuer's own JWKS (never
 * `jku`/`x5u`/`jwk`), signature, `exp` (required), `nbf`, `iat`, `aud`,
 * `typ`, `max_token_age`, non-empty `sub`, and header-safe claim values.
 * A JWS whose `iss` no authenticator of the route knows is refused by the
 * route's last JWT authenticator with reason `jwt_issuer`.
 */
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import type { Logger } from 'pino';
import type { IssuerConfig } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Metrics } from '../metrics/metrics.js';
import { unauthenticated } from '../pipeline/authenticate.js';
import type { RequestContext } from '../pipeline/context.js';
import { NOT_RESPONSIBLE, type AuthOutcome, type Authenticator, type Principal } from './authenticator.js';
import type { AuthenticatorFactory } from './index.js';
import { JwksCache } from './jwks-cache.js';
import { OutcomeCache } from './outcome-cache.js';

/** Compact JWS serialization (RFC 7515 §7.1): three base64url parts (an empty signature is claimed, then refused as alg "none"). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;
/** A header-bound value: printable ASCII only (DESIGN.md §10). */
const PRINTABLE = /^[\x20-\x7e]+$/;
/** A list element (role, team, scope): printable, no space, and no comma, which would split the identity header list. */
const LIST_ITEM = /^[\x21-\x2b\x2d-\x7e]+$/;

/** The per-issuer state shared across reloads: the key set, the verified-token cache and the refused-token cache. */
export interface IssuerState {
  readonly jwks: JwksCache;
  readonly outcomes: OutcomeCache;
  readonly refusals: OutcomeCache<GatewayError>;
}

/**
 * Refusals that the same token would earn again, and that cost a signature
 * check (jose checks claims after the signature): remembered, so that a
 * client retrying with an expired or foreign-audience token does not cost
 * an ES256/RSA verification per request. Not remembered: an unknown kid
 * (the key set may gain it), an unavailable JWKS, and claims that only
 * hold for now (nbf, iat in the future).
 */
const LASTING_REFUSALS = new Set(['jwt_expired', 'jwt_too_old', 'jwt_bad_signature', 'jwt_audience', 'jwt_issuer', 'jwt_claim_missing', 'jwt_typ', 'jwt_malformed', 'claim_invalid']);

/** A stand-alone IssuerState (tests, tools); the gateway builds its parts as shared resources instead. */
export function createIssuerState(name: string, config: IssuerConfig, log: Logger, metrics: Metrics): IssuerState & { close(): void } {
  const jwks = new JwksCache({ name, config, log, metrics });
  const outcomes = new OutcomeCache();
  const refusals = new OutcomeCache<GatewayError>();
  return { jwks, outcomes, refusals, close: () => (jwks.close(), outcomes.clear(), refusals.clear()) };
}

/** The settings a key set depends on: a reload that changes only audience, claims or checks keeps the warm keys. */
function keySpec(cfg: IssuerConfig): string {
  const { issuer, jwks_uri, algorithms, jwks_cooldown, jwks_refresh, jwks_max_stale, jwks_timeout } = cfg;
  return JSON.stringify({ issuer, jwks_uri, algorithms, jwks_cooldown, jwks_refresh, jwks_max_stale, jwks_timeout });
}

/** Reads a claim: a top-level claim of that exact name (e.g. Auth0's "https://example.com/roles"), else a dot path. */
export function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let v: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** A claim as a list: absent → [], a space-delimited string, or an array of strings. Undefined when malformed. */
export function claimList(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return [];
  const items = typeof value === 'string' ? value.split(' ') : Array.isArray(value) ? value : undefined;
  if (!items) return undefined;
  const out = new Set<string>();
  for (const item of items) {
    if (typeof item !== 'string') return undefined;
    if (item === '') continue;
    if (!LIST_ITEM.test(item)) return undefined;
    out.add(item);
  }
  return [...out];
}

const claimInvalid = (what: string) => unauthenticated('claim_invalid', `JWT claim for ${what} has a value that cannot be sent in an identity header`);

/** Maps verified claims to a Principal, per the issuer's `claims` block. */
export function principalFrom(name: string, cfg: IssuerConfig, payload: JWTPayload, kid: string | undefined): Principal {
  if (typeof payload.sub !== 'string' || payload.sub === '') throw unauthenticated('jwt_claim_missing', 'JWT has no "sub" claim');
  const subject = claimAt(payload, cfg.claims.subject);
  if (typeof subject !== 'string' || subject === '') throw unauthenticated('jwt_claim_missing', `JWT has no "${cfg.claims.subject}" claim for the subject`);
  if (!PRINTABLE.test(subject)) throw claimInvalid('subject');
  const roles = cfg.claims.roles === undefined ? [] : claimList(claimAt(payload, cfg.claims.roles));
  if (!roles) throw claimInvalid('roles');
  const scopes = claimList(claimAt(payload, cfg.claims.scopes));
  if (!scopes) throw claimInvalid('scopes');
  const teamList = cfg.claims.teams === undefined ? [] : claimList(claimAt(payload, cfg.claims.teams));
  if (!teamList) throw claimInvalid('teams');
  // "finance" or "finance:operator" (team role); Keycloak's full group path "/finance" loses its leading "/".
  const teams = new Map<string, string | undefined>();
  for (const entry of teamList) {
    const colon = entry.indexOf(':');
    const team = (colon === -1 ? entry : entry.slice(0, colon)).replace(/^\//, '');
    const role = colon === -1 ? undefined : entry.slice(colon + 1);
    if (team === '' || role === '') throw claimInvalid('teams');
    if (!teams.has(team) || teams.get(team) === undefined) teams.set(team, role);
  }
  return Object.freeze({
    kind: 'jwt' as const,
    subject,
    roles: Object.freeze(roles),
    teams,
    scopes: Object.freeze(scopes),
    issuer: name,
    ...(kid === undefined ? {} : { kid }),
  });
}

/** jose's errors → audit reasons (the mapping happens here, at the boundary). */
function refusal(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as errors.JOSEError;
  const msg = `JWT refused: ${e?.message ?? 'invalid'}`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return unauthenticated('jwt_bad_signature', msg);
  if (err instanceof errors.JWTExpired) return unauthenticated(err.claim === 'iat' ? 'jwt_too_old' : 'jwt_expired', msg);
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return unauthenticated('jwt_claim_missing', msg);
    if (err.reason === 'invalid') return unauthenticated('jwt_malformed', msg);
    const reason = { aud: 'jwt_audience', iss: 'jwt_issuer', nbf: 'jwt_not_yet_valid', iat: 'jwt_iat_future', typ: 'jwt_typ', exp: 'jwt_expired' }[err.claim];
    return unauthenticated(reason ?? 'jwt_malformed', msg);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthenticated('jwt_alg_not_allowed', msg);
  // JWSInvalid, JWTInvalid, a TypeError from a malformed part: never a pass.
  return unauthenticated('jwt_malformed', msg);
}

/** Is `a` the last JWT authenticator in this list (or not in it at all)? Cached per compiled route list. */
const lastJwt = new WeakMap<readonly Authenticator[], Authenticator | undefined>();
function isLastJwt(a: Authenticator, list: readonly Authenticator[] | undefined): boolean {
  if (!list || !list.includes(a)) return true;
  if (!lastJwt.has(list)) lastJwt.set(list, list.findLast((x) => x instanceof JwtAuthenticator));
  return lastJwt.get(list) === a;
}

/**
 * The verified-token cache key: SHA-256 of the token, worked out once per
 * token on a connection for all of a route's JWT issuers (token-memo.ts).
 */
function keyFor(token: string, ctx: RequestContext | undefined): string {
  const memo = ctx?.tokenMemo;
  return memo === undefined ? OutcomeCache.key(token) : (memo.jwtKey ??= OutcomeCache.key(token));
}

export class JwtAuthenticator implements Authenticator {
  readonly name: string;
  readonly #cfg: IssuerConfig;
  readonly #state: IssuerState;
  readonly #allowed: ReadonlySet<string>;
  readonly #skewS: number;

  constructor(name: string, cfg: IssuerConfig, state: IssuerState) {
    this.name = name;
    this.#cfg = cfg;
    this.#state = state;
    this.#allowed = new Set(cfg.algorithms);
    this.#skewS = cfg.clock_skew / 1000;
  }

  ready(): boolean {
    return this.#state.jwks.ready();
  }

  authenticate(token: string, ctx: RequestContext | undefined): AuthOutcome | Promise<AuthOutcome> {
    // Two dots at least, or it is no JWS; the full check only for a token not verified before (a cached one passed it).
    const dot = token.indexOf('.');
    if (dot <= 0 || token.indexOf('.', dot + 1) === -1) return NOT_RESPONSIBLE;
    const cacheKey = keyFor(token, ctx);
    const hit = this.#state.outcomes.get(cacheKey);
    if (hit) return hit;
    const refused = this.#state.refusals.get(cacheKey);
    if (refused) return this.#refuse(refused, ctx);
    if (!COMPACT_JWS.test(token)) return NOT_RESPONSIBLE;
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return this.#unclaimed(ctx, 'jwt_malformed', 'JWS payload is not a JSON claims set');
    }
    if (iss !== this.#cfg.issuer) return this.#unclaimed(ctx, 'jwt_issuer', typeof iss === 'string' ? 'JWT issuer is not accepted on this route' : 'JWT has no "iss" claim');
    return this.#verify(token, cacheKey).catch((err: unknown) => {
      const e = refusal(err);
      if (e.reason !== undefined && LASTING_REFUSALS.has(e.reason)) this.#state.refusals.set(cacheKey, e, Date.now() + this.#cfg.jwks_refresh);
      return this.#refuse(e, ctx);
    });
  }

  #refuse(e: GatewayError, ctx: RequestContext | undefined): AuthOutcome {
    // Two issuer entries for one IdP (e.g. two clients with their own audience): the next one may accept it.
    if (e.reason === 'jwt_audience' && this.#sameIssuerFollows(ctx)) return NOT_RESPONSIBLE;
    throw e;
  }

  /** The token's issuer string, as configured. */
  get issuer(): string {
    return this.#cfg.issuer;
  }

  #sameIssuerFollows(ctx: RequestContext | undefined): boolean {
    const list = ctx?.route?.authenticators ?? [];
    const i = list.indexOf(this);
    return i !== -1 && list.slice(i + 1).some((a) => a instanceof JwtAuthenticator && a.issuer === this.#cfg.issuer);
  }

  /** Not ours: the next JWT authenticator may know it; the last one refuses. */
  #unclaimed(ctx: RequestContext | undefined, reason: string, message: string): AuthOutcome {
    if (isLastJwt(this, ctx?.route?.authenticators)) throw unauthenticated(reason, message);
    return NOT_RESPONSIBLE;
  }

  async #verify(token: string, cacheKey: string): Promise<Principal> {
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw unauthenticated('jwt_malformed', 'JWS header is not a JSON object');
    }
    const { alg, kid } = header;
    if (typeof alg !== 'string' || !this.#allowed.has(alg)) throw unauthenticated('jwt_alg_not_allowed', `JWT algorithm is not allowed for issuer "${this.name}"`);
    // RFC 7515 §4.1.11: we understand no extension, so any crit refuses the token.
    if (header.crit !== undefined) throw unauthenticated('jwt_crit_unknown', 'JWS has "crit" header parameters this gateway does not understand');
    // RFC 8725 §3.10: keys come from the configured JWKS only; a token naming its own key is refused outright.
    if ('jwk' in header || 'jku' in header || 'x5u' in header) throw unauthenticated('jwt_untrusted_header', 'JWS names its own key (jwk, jku or x5u header)');
    if (kid !== undefined && (typeof kid !== 'string' || kid === '')) throw unauthenticated('jwt_malformed', 'JWS "kid" header is not a string');

    const found = await this.#state.jwks.lookup(alg, kid);
    if ('unavailable' in found) {
      throw new GatewayError('GW_AUTH_UNAVAILABLE', `no usable JWKS for issuer "${this.name}"`, { reason: 'jwks_unavailable' });
    }
    if ('missing' in found) {
      throw unauthenticated('jwt_kid_unknown', kid === undefined ? `JWT has no "kid" and issuer "${this.name}" has not exactly one ${alg} key` : `JWT "kid" is not in the JWKS of issuer "${this.name}"`);
    }
    const key = found.found;
    const { payload } = await jwtVerify(token, key.key, {
      algorithms: [alg],
      issuer: this.#cfg.issuer,
      audience: this.#cfg.audience,
      clockTolerance: this.#skewS,
      requiredClaims: ['exp'],
      ...(this.#cfg.max_token_age === undefined ? {} : { maxTokenAge: this.#cfg.max_token_age / 1000 }),
      ...(this.#cfg.typ === undefined ? {} : { typ: this.#cfg.typ }),
    });
    const now = Date.now() / 1000;
    // jose checks iat only together with maxTokenAge (DESIGN.md §10 wants it always).
    if (typeof payload.iat === 'number' && payload.iat > now + this.#skewS) throw unauthenticated('jwt_iat_future', 'JWT "iat" is in the future');
    const principal = principalFrom(this.name, this.#cfg, payload, key.kid);
    // Never cached past exp (or max_token_age), nor longer than one JWKS refresh period, so a withdrawn key stops working.
    let until = Math.min((payload.exp as number) * 1000, Date.now() + this.#cfg.jwks_refresh);
    if (this.#cfg.max_token_age !== undefined && typeof payload.iat === 'number') until = Math.min(until, payload.iat * 1000 + this.#cfg.max_token_age);
    this.#state.outcomes.set(cacheKey, principal, until);
    return principal;
  }
}

/** The factory of src/authn/index.ts: one JwtAuthenticator per entry of `issuers:`. */
export const jwtAuthenticators: AuthenticatorFactory = (deps) => {
  const out = new Map<string, Authenticator>();
  for (const [name, cfg] of Object.entries(deps.config.issuers)) {
    const jwks = deps.scope.acquire(
      `issuer:${name}`,
      keySpec(cfg),
      () => {
        const j = new JwksCache({ name, config: cfg, log: deps.log, metrics: deps.metrics });
        // `check` and `explain` fetch lazily, when a token needs a key.
        if (deps.mode === 'serve') j.start();
        return j;
      },
      (j) => j.close(),
    );
    // Verified outcomes depend on every setting (audience, claims, checks): a changed issuer starts afresh.
    const outcomes = deps.scope.acquire(`issuer-outcomes:${name}`, JSON.stringify(cfg), () => new OutcomeCache(), (c) => c.clear());
    const refusals = deps.scope.acquire(`issuer-refusals:${name}`, JSON.stringify(cfg), () => new OutcomeCache<GatewayError>(), (c) => c.clear());
    out.set(name, new JwtAuthenticator(name, cfg, { jwks, outcomes, refusals }));
  }
  return out;
};
