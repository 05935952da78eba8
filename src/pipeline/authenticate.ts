/**
 * The authenticate stage: takes the bearer token from the Authorization
 * header only (RFC 6750 §2.1; never the query) and asks the route's
 * authenticators in order. The first that claims the token decides.
 */
import { NOT_RESPONSIBLE, type AuthOutcome, type Authenticator } from '../authn/authenticator.js';
import { tokenMemo } from '../authn/token-memo.js';
import { GatewayError } from '../errors.js';
import type { RequestContext } from './context.js';

/** RFC 6750 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export function unauthenticated(reason: string, message: string, cause?: unknown): GatewayError {
  return new GatewayError('GW_UNAUTHENTICATED', message, {
    reason,
    bearerError: reason === 'token_missing' ? undefined : 'invalid_token',
    cause,
  } as ConstructorParameters<typeof GatewayError>[2]);
}

/** Whether a header starts with the scheme name `Bearer`, in any case (RFC 9110 §11.1): without the two strings a slice and toLowerCase() make. */
function isBearer(header: string): boolean {
  // ASCII letters only: 0x20 is the lower-case bit.
  return (
    (header.charCodeAt(0) | 0x20) === 0x62 &&
    (header.charCodeAt(1) | 0x20) === 0x65 &&
    (header.charCodeAt(2) | 0x20) === 0x61 &&
    (header.charCodeAt(3) | 0x20) === 0x72 &&
    (header.charCodeAt(4) | 0x20) === 0x65 &&
    (header.charCodeAt(5) | 0x20) === 0x72
  );
}

/** The credentials of a `Bearer` Authorization header, not yet checked against RFC 6750's b64token; or a 401 GatewayError. */
function bearerCredentials(header: string | undefined): string {
  if (header === undefined) throw unauthenticated('token_missing', 'no Authorization header');
  const sp = header.indexOf(' ');
  if (sp !== 6 || !isBearer(header)) throw unauthenticated('token_malformed', 'Authorization scheme is not Bearer');
  const token = header.slice(sp + 1).trim();
  if (!token) throw unauthenticated('token_malformed', 'empty bearer token');
  return token;
}

function checkB64Token(token: string): void {
  if (!B64TOKEN.test(token)) throw unauthenticated('token_malformed', 'bearer token has characters outside RFC 6750 b64token');
}

/** The bearer token of a request, or a 401 GatewayError. */
export function bearerToken(header: string | undefined): string {
  const token = bearerCredentials(header);
  checkB64Token(token);
  return token;
}

function accept(ctx: RequestContext, out: AuthOutcome): boolean {
  if (out === NOT_RESPONSIBLE) return false;
  ctx.principal = out;
  return true;
}

async function continueAsync(ctx: RequestContext, token: string, list: readonly Authenticator[], i: number, first: Promise<AuthOutcome>): Promise<void> {
  if (accept(ctx, await first)) return;
  for (let j = i + 1; j < list.length; j++) if (accept(ctx, await (list[j] as Authenticator).authenticate(token, ctx))) return;
  throw unauthenticated('token_malformed', 'no authenticator recognizes this token');
}

export function authenticateStage(ctx: RequestContext): void | Promise<void> {
  const token = bearerCredentials(ctx.req.headers.authorization);
  // The connection's token again: checked, and maybe proved, by an earlier request (token-memo.ts).
  const memo = (ctx.tokenMemo = tokenMemo(ctx.socket, token));
  if (!memo.wellFormed) {
    checkB64Token(token);
    memo.wellFormed = true;
  }
  const list = ctx.route?.authenticators ?? [];
  for (let i = 0; i < list.length; i++) {
    const out = (list[i] as Authenticator).authenticate(token, ctx);
    if (out instanceof Promise) return continueAsync(ctx, token, list, i, out);
    if (accept(ctx, out)) return;
  }
  throw unauthenticated('token_malformed', 'no authenticator recognizes this token');
}
