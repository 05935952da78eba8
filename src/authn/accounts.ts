/**
 * Service-account operations on store data (create, rotate, revoke, delete),
 * shared by the CLI and, later, the admin API. Each runs inside
 * TokenStore.update(), on data read under the store's lock.
 */
import { NAME } from '../config/schema.js';
import { addDuration, parseDurationParts } from '../util/units.js';
import type { Account, StoreData, StoredToken } from './store-data.js';
import { issueToken, newKeyId } from './tokens.js';

/** A refused operation (unknown account, duplicate name, unknown role…): CLI exit 1. */
export class AccountError extends Error {
  override name = 'AccountError';
  /** What kind of refusal: the admin API answers 404, 409 or 400 by it. */
  readonly kind: 'unknown' | 'exists' | 'invalid';

  constructor(message: string, kind: AccountError['kind'] = 'invalid') {
    super(message);
    this.kind = kind;
  }
}

export interface AccountPolicy {
  /** Token prefix, from `accounts.token_prefix`. */
  prefix: string;
  /** Longest lifetime, from `accounts.max_lifetime` (e.g. "24mo"). */
  maxLifetime: string;
  /** Roles declared in gateway.yaml `roles:`. */
  roles: ReadonlySet<string>;
}

export type TokenStatus = 'active' | 'grace' | 'expired' | 'revoked';

/** A token's state at `now`: `grace` is a rotated token still inside its grace period. */
export function tokenStatus(t: StoredToken, now: number, times: TokenTimes = tokenTimes(t)): TokenStatus {
  if (t.revoked !== undefined && times.revoked <= now) return 'revoked';
  if (times.expires <= now) return 'expired';
  return t.revoked !== undefined ? 'grace' : 'active';
}

/** A token's `revoked` and `expires` as epoch ms (NaN when absent). */
export interface TokenTimes {
  readonly revoked: number;
  readonly expires: number;
}

export function tokenTimes(t: StoredToken): TokenTimes {
  return { revoked: t.revoked === undefined ? NaN : Date.parse(t.revoked), expires: Date.parse(t.expires) };
}

/** The expiry of a token issued at `now` for `expiresIn`; refused past `maxLifetime`. */
export function tokenExpiry(now: Date, expiresIn: string, maxLifetime: string): Date {
  const end = addDuration(now, expiresIn);
  if (!end || end.getTime() <= now.getTime()) throw new AccountError(`invalid lifetime "${expiresIn}": expected a positive duration such as "6mo", "12mo", "24mo" or "30d"`);
  const max = addDuration(now, maxLifetime);
  if (max && end.getTime() > max.getTime()) throw new AccountError(`lifetime "${expiresIn}" exceeds accounts.max_lifetime (${maxLifetime})`);
  return end;
}

/** Parses `--team T` / `--team T:ROLE` values. */
export function parseTeams(values: readonly string[], roles: ReadonlySet<string>): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const v of values) {
    const i = v.indexOf(':');
    const team = i === -1 ? v : v.slice(0, i);
    const role = i === -1 ? null : v.slice(i + 1);
    if (!NAME.test(team)) throw new AccountError(`invalid team "${team}": expected letters, digits, ".", "_" or "-"`);
    if (role !== null && !roles.has(role)) throw new AccountError(`unknown role "${role}" for team "${team}" (declared roles: ${[...roles].join(', ') || 'none'})`);
    out[team] = role;
  }
  return out;
}

function checkRole(role: string, roles: ReadonlySet<string>): void {
  if (!roles.has(role)) throw new AccountError(`unknown role "${role}" (declared roles in gateway.yaml: ${[...roles].join(', ') || 'none'})`);
}

function find(data: StoreData, name: string): Account {
  const a = data.accounts.find((x) => x.name === name);
  if (!a) throw new AccountError(`unknown account "${name}"`, 'unknown');
  return a;
}

function freshToken(data: StoreData, prefix: string, now: Date, expires: Date): { token: string; stored: StoredToken } {
  const used = new Set(data.accounts.flatMap((a) => a.tokens.map((t) => t.key_id)));
  let keyId = newKeyId();
  while (used.has(keyId)) keyId = newKeyId();
  const issued = issueToken(prefix, keyId);
  return { token: issued.token, stored: { key_id: issued.keyId, hash: issued.hash, created: now.toISOString(), expires: expires.toISOString() } };
}

export interface CreateInput {
  name: string;
  role: string;
  teams: Record<string, string | null>;
  description: string;
  expiresIn: string;
}

export interface Issued {
  account: Account;
  /** The new token: to be shown once. */
  token: string;
  keyId: string;
  expires: string;
}

export function createAccount(data: StoreData, input: CreateInput, policy: AccountPolicy, now: Date): Issued {
  if (!NAME.test(input.name)) throw new AccountError(`invalid account name "${input.name}": expected letters, digits, ".", "_" or "-" (at most 64 characters)`);
  checkRole(input.role, policy.roles);
  if (data.accounts.some((a) => a.name === input.name)) throw new AccountError(`account "${input.name}" already exists`, 'exists');
  const expires = tokenExpiry(now, input.expiresIn, policy.maxLifetime);
  const { token, stored } = freshToken(data, policy.prefix, now, expires);
  const account: Account = { name: input.name, description: input.description, role: input.role, teams: input.teams, scopes: [], created: now.toISOString(), tokens: [stored] };
  data.accounts.push(account);
  return { account, token, keyId: stored.key_id, expires: stored.expires };
}

export interface Rotated extends Issued {
  /** Key ids of the previous tokens, and when they stop working. */
  previous: { keyId: string; until: string }[];
}

/**
 * Issues a new token. The previous ones stop at once, or after `grace`
 * (zero-downtime rotation); a token already ending sooner keeps its end.
 */
export function rotateToken(data: StoreData, name: string, opts: { grace?: string | undefined; expiresIn: string }, policy: AccountPolicy, now: Date): Rotated {
  const account = find(data, name);
  let until = now;
  if (opts.grace !== undefined) {
    const d = parseDurationParts(opts.grace);
    const end = addDuration(now, opts.grace);
    if (!d || !end) throw new AccountError(`invalid grace period "${opts.grace}": expected a duration such as "1h"`);
    until = end;
  }
  const expires = tokenExpiry(now, opts.expiresIn, policy.maxLifetime);
  const previous: Rotated['previous'] = [];
  for (const t of account.tokens) {
    const st = tokenStatus(t, now.getTime());
    if (st !== 'active' && st !== 'grace') continue;
    const ends = Math.min(Date.parse(t.expires), t.revoked === undefined ? Infinity : Date.parse(t.revoked), until.getTime());
    t.revoked = new Date(ends).toISOString();
    previous.push({ keyId: t.key_id, until: t.revoked });
  }
  const { token, stored } = freshToken(data, policy.prefix, now, expires);
  account.tokens.push(stored);
  return { account, token, keyId: stored.key_id, expires: stored.expires, previous };
}

/** Revokes every token of the account that still works (grace periods included). */
export function revokeAccount(data: StoreData, name: string, now: Date): string[] {
  const account = find(data, name);
  const out: string[] = [];
  for (const t of account.tokens) {
    const st = tokenStatus(t, now.getTime());
    if (st === 'active' || st === 'grace') {
      t.revoked = now.toISOString();
      out.push(t.key_id);
    }
  }
  return out;
}

export function deleteAccount(data: StoreData, name: string): Account {
  const account = find(data, name);
  data.accounts.splice(data.accounts.indexOf(account), 1);
  return account;
}

/** An account as shown by `list`/`show` and the admin API: metadata only, never a hash or a token. */
export function describeAccount(a: Account, now: number) {
  return {
    name: a.name,
    description: a.description,
    role: a.role,
    teams: a.teams,
    created: a.created,
    tokens: a.tokens.map((t) => ({
      key_id: t.key_id,
      status: tokenStatus(t, now),
      created: t.created,
      expires: t.expires,
      ...(t.revoked !== undefined ? { revoked: t.revoked } : {}),
      ...(t.last_used !== undefined ? { last_used: t.last_used } : {}),
    })),
  };
}
