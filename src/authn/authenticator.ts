/**
 * The authenticator contract (after Oathkeeper): each authenticator either
 * claims a bearer token — returning a Principal or throwing a 401/503
 * GatewayError with an audit reason — or returns NOT_RESPONSIBLE so that the
 * next one may try.
 */
import type { RequestContext } from '../pipeline/context.js';

export type AuthKind = 'service_account' | 'jwt';

export interface Principal {
  readonly kind: AuthKind;
  readonly subject: string;
  /** Global roles, as granted (not yet expanded through the hierarchy). */
  readonly roles: readonly string[];
  /** Team memberships: team name → the role held in that team, if any. */
  readonly teams: ReadonlyMap<string, string | undefined>;
  readonly scopes: readonly string[];
  /** Service accounts: the token's key id (never the token). */
  readonly keyId?: string;
  /** JWT: the issuer name from gateway.yaml, and the key id that verified it. */
  readonly issuer?: string;
  readonly kid?: string;
}

export const NOT_RESPONSIBLE: unique symbol = Symbol('gatehouse.not-responsible');
export type AuthOutcome = Principal | typeof NOT_RESPONSIBLE;

export interface Authenticator {
  /** `service_account` or the issuer's name in gateway.yaml. */
  readonly name: string;
  authenticate(token: string, ctx: RequestContext): AuthOutcome | Promise<AuthOutcome>;
  /** False while the authenticator cannot work yet (e.g. JWKS not fetched): /readyz reports it. */
  ready?(): boolean;
  close?(): Promise<void> | void;
}
