/**
 * The `service_account` authenticator: claims bearer tokens that start with
 * `<prefix>_`, looks the key id up in the store's in-memory snapshot (no
 * I/O), compares the secret's SHA-256 in constant time and checks digits and
 * checksum — once per token and snapshot on a connection (token-memo.ts);
 * expiry and revocation on every request.
 */
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.js';
import type { GatewayError } from '../errors.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RequestContext } from '../pipeline/context.js';
import { unauthenticated } from '../pipeline/authenticate.js';
import { tokenStatus, tokenTimes, type TokenTimes } from './accounts.js';
import { NOT_RESPONSIBLE, type AuthOutcome, type Authenticator, type Principal } from './authenticator.js';
import type { AuthenticatorFactory } from './index.js';
import { openTokenStore, StoreError, type StoreSnapshot, type StoredToken, type TokenEntry, type TokenStore } from './token-store.js';
import type { Account } from './store-data.js';
import { parseToken, secretMatches, tokenParts } from './tokens.js';

/** What a stored token record needs on every request, worked out once: a snapshot's records never change; a reload brings new ones. */
interface Known {
  readonly times: TokenTimes;
  /** The stored SHA-256 of the secret, as the bytes of its hex. */
  readonly hash: Buffer;
  readonly principal: Principal;
}

/** A token that matched its stored record: what the connection's memo keeps (token-memo.ts), valid while the snapshot is current. */
interface Found {
  readonly by: ServiceAccountAuthenticator;
  readonly snapshot: StoreSnapshot;
  readonly entry: TokenEntry;
  readonly known: Known;
  readonly keyId: string;
}

export class ServiceAccountAuthenticator implements Authenticator {
  readonly name = 'service_account';
  readonly store: TokenStore;
  readonly #prefix: string;
  /** `<prefix>_`: what a token of ours starts with. */
  readonly #claim: string;
  /** Per stored token record; a new snapshot brings new records, so this never goes stale. */
  readonly #known = new WeakMap<StoredToken, Known>();

  constructor(store: TokenStore, prefix: string) {
    this.store = store;
    this.#prefix = prefix;
    this.#claim = `${prefix}_`;
  }

  authenticate(token: string, ctx?: RequestContext): AuthOutcome {
    if (!token.startsWith(this.#claim)) return NOT_RESPONSIBLE;
    const snapshot = this.store.current();
    const memo = ctx?.tokenMemo;
    let found = memo?.serviceAccount as Found | undefined;
    // The connection's token matched this record in this snapshot before: no hash to compare again (token-memo.ts).
    if (found === undefined || found.by !== this || found.snapshot !== snapshot) {
      found = this.#find(token, snapshot, ctx);
      if (memo !== undefined) memo.serviceAccount = found;
    }
    const { entry, known, keyId } = found;
    if (ctx) ctx.keyId = keyId;
    const now = Date.now();
    const status = tokenStatus(entry.token, now, known.times);
    if (status === 'revoked') throw unauthenticated('token_revoked', `token ${keyId} of service account "${entry.account.name}" was revoked at ${entry.token.revoked}`);
    if (status === 'expired') throw unauthenticated('token_expired', `token ${keyId} of service account "${entry.account.name}" expired at ${entry.token.expires}`);
    this.store.recordUse(keyId, now);
    return known.principal;
  }

  /** The stored record whose hash the token's secret matches, or a 401. */
  #find(token: string, snapshot: StoreSnapshot, ctx: RequestContext | undefined): Found {
    // The lookup comes first; digits and checksum are checked by the refusal, or once the secret matched (a memo miss:
    // once per connection and token). The right secret under a wrong checksum is not the token issued: refused too.
    const parts = tokenParts(this.#prefix, token);
    const entry = parts && snapshot.byKeyId(parts.keyId);
    if (!parts || !entry) throw this.#refusal(token, ctx, 'no service-account token has key id');
    let known = this.#known.get(entry.token);
    if (known === undefined) {
      known = this.#learn(entry.token, entry.account, parts.keyId);
      this.#known.set(entry.token, known);
    }
    if (!secretMatches(parts.secret, known.hash)) throw this.#refusal(token, ctx, 'wrong secret for key id');
    const parsed = parseToken(this.#prefix, token);
    if (!parsed.ok) {
      // The secret proved the key id: the audit record names it, so the holder of a mangled token can be found.
      if (ctx) ctx.keyId = parts.keyId;
      throw unauthenticated('token_malformed', parsed.problem);
    }
    return { by: this, snapshot, entry, known, keyId: parts.keyId };
  }

  /** A token that matches no stored one: malformed when it could not have been issued (its key id is then not trusted either), else unknown. */
  #refusal(token: string, ctx: RequestContext | undefined, what: string): GatewayError {
    const parsed = parseToken(this.#prefix, token);
    if (!parsed.ok) return unauthenticated('token_malformed', parsed.problem);
    if (ctx) ctx.keyId = parsed.keyId;
    return unauthenticated('token_unknown', `${what} ${parsed.keyId}`);
  }

  #learn(token: StoredToken, a: Account, keyId: string): Known {
    return {
      times: tokenTimes(token),
      hash: Buffer.from(token.hash, 'latin1'),
      principal: Object.freeze({
        kind: 'service_account' as const,
        subject: a.name,
        roles: Object.freeze([a.role]),
        teams: new Map(Object.entries(a.teams).map(([team, role]) => [team, role ?? undefined])),
        scopes: Object.freeze([...a.scopes]),
        keyId,
      }),
    };
  }
}

/** gatehouse_token_expiry_timestamp_seconds: per account, the latest expiry of a token that still works. */
function exportExpiry(metrics: Metrics, snap: StoreSnapshot): void {
  metrics.tokenExpiry.reset();
  const now = Date.now();
  for (const a of snap.accounts) {
    let latest = 0;
    for (const t of a.tokens) if (tokenStatus(t, now) === 'active') latest = Math.max(latest, Date.parse(t.expires));
    if (latest) metrics.tokenExpiry.set({ account: a.name }, latest / 1000);
  }
}

function storeErrorHandler(log: Logger, metrics: Metrics) {
  return (err: StoreError) => {
    metrics.storeErrors.inc({ kind: err.kind });
    log.error({ store_error: err.message, kind: err.kind }, 'token store problem: the last good snapshot keeps serving');
  };
}

export const serviceAccountFactory: AuthenticatorFactory = (deps) => {
  const { config, source, log, metrics, mode } = deps;
  const url = config.store;
  const lastUsedInterval = config.accounts.last_used_interval;
  const spec = JSON.stringify({ url, baseDir: source.baseDir, lastUsedInterval, mode });
  let store: TokenStore;
  try {
    store = deps.scope.acquire(
      `store:${url}`,
      spec,
      () => {
        const s = openTokenStore(url, {
          baseDir: source.baseDir,
          lastUsedInterval,
          onError: storeErrorHandler(log, metrics),
          onChange: (snap, external) => {
            if (external) log.info({ store: s.location, accounts: snap.accounts.length }, 'token store reloaded');
            exportExpiry(metrics, snap);
          },
        });
        exportExpiry(metrics, s.current());
        if (mode === 'serve' && !s.exists) {
          // Also what a mistyped `store:` path looks like: say where the gateway looks.
          log.warn({ store: s.location }, 'token store does not exist yet: no service-account token is accepted until `gatehouse accounts create` writes it');
        }
        if (mode === 'serve') s.start();
        return s;
      },
      (s) => s.close(),
    );
  } catch (err) {
    if (err instanceof StoreError) throw new ConfigError([source.issue(['store'], err.message)]);
    throw err;
  }
  return new Map([['service_account', new ServiceAccountAuthenticator(store, config.accounts.token_prefix)]]);
};
