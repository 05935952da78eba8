/**
 * A stand-in authenticator for audit and metrics tests (the token store and
 * JWT authenticators are separate issues): `sa-<name>-<role>` is a service
 * account, `jwt-<sub>-<role>` a JWT principal, `expired-…` a 401
 * token_expired, `revoked-…` a 401 token_revoked.
 */
import type { Authenticator, Principal } from '../../src/authn/authenticator.js';
import type { Gateway } from '../../src/app.js';
import { unauthenticated } from '../../src/pipeline/authenticate.js';

export const fakeAuthenticator: Authenticator = {
  name: 'fake',
  authenticate(token) {
    if (token.startsWith('expired-')) throw unauthenticated('token_expired', 'token expired');
    if (token.startsWith('revoked-')) throw unauthenticated('token_revoked', 'token revoked');
    const [kind, subject = 'x', role = 'viewer'] = token.split('-');
    const base = { subject, roles: [role], teams: new Map<string, string | undefined>(), scopes: [] as string[] };
    if (kind === 'sa') return { ...base, kind: 'service_account', keyId: `key_${subject}` } satisfies Principal;
    if (kind === 'jwt') return { ...base, kind: 'jwt', issuer: 'corp', kid: 'k1' } satisfies Principal;
    throw unauthenticated('token_malformed', 'unknown token');
  },
};

/** Gives every non-public route of the running snapshot the fake authenticator. */
export function useFakeAuth(gw: Gateway): void {
  const rt = gw.runtime;
  gw.runtime = Object.freeze({ ...rt, routes: Object.freeze(rt.routes.map((r) => Object.freeze({ ...r, authenticators: Object.freeze([fakeAuthenticator]) }))) });
}
