/**
 * The token store's data: the JSON file format (validated with zod), the
 * indexed in-memory snapshot and StoreError. Shared by every store kind.
 */
import { z } from 'zod';

const iso = z.iso.datetime({ offset: true });

const tokenSchema = z.strictObject({
  key_id: z.string().regex(/^[0-9A-Za-z]{12}$/),
  /** SHA-256 of the secret, hex. Never the secret, never the token. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  created: iso,
  expires: iso,
  /** When the token stops (or stopped) being valid; in the future during a rotation grace period. */
  revoked: iso.optional(),
  last_used: iso.optional(),
});

const accountSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().default(''),
  role: z.string().min(1),
  /** team → role held in that team (null: a member without a team role). */
  teams: z.record(z.string(), z.string().nullable()).default({}),
  scopes: z.array(z.string()).default([]),
  created: iso,
  tokens: z.array(tokenSchema),
});

export const storeFileSchema = z.strictObject({
  version: z.literal(1),
  accounts: z.array(accountSchema),
});

export type StoredToken = z.infer<typeof tokenSchema>;
export type Account = z.infer<typeof accountSchema>;
export type StoreData = z.infer<typeof storeFileSchema>;

export function emptyStore(): StoreData {
  return { version: 1, accounts: [] };
}

/** A store that cannot be read or written: the message names the store and says why. */
export class StoreError extends Error {
  override name = 'StoreError';
  /** For metrics: read, parse, schema, lock, write. */
  readonly kind: string;
  constructor(kind: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

export interface TokenEntry {
  readonly account: Account;
  readonly token: StoredToken;
}

/** An immutable, indexed view of the store (lookups are O(1) by key id). */
export class StoreSnapshot {
  readonly data: StoreData;
  readonly #byKeyId = new Map<string, TokenEntry>();
  readonly #byName = new Map<string, Account>();

  constructor(data: StoreData) {
    this.data = data;
    for (const account of data.accounts) {
      this.#byName.set(account.name, account);
      for (const token of account.tokens) this.#byKeyId.set(token.key_id, { account, token });
    }
  }

  byKeyId(keyId: string): TokenEntry | undefined {
    return this.#byKeyId.get(keyId);
  }

  account(name: string): Account | undefined {
    return this.#byName.get(name);
  }

  get accounts(): readonly Account[] {
    return this.data.accounts;
  }
}

/** Parses and validates a store file's text; throws StoreError naming the file. */
export function parseStoreText(text: string, where: string): StoreData {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StoreError('parse', `Cannot read token store "${where}": not valid JSON (${(err as Error).message}); fix or restore the file — it is never overwritten while damaged`);
  }
  const r = storeFileSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    const at = i ? i.path.join('.') : '';
    throw new StoreError('schema', `Cannot read token store "${where}": ${at ? `${at}: ` : ''}${i?.message ?? 'unexpected content'}; fix or restore the file — it is never overwritten while damaged`);
  }
  const names = new Set<string>();
  const keys = new Set<string>();
  for (const a of r.data.accounts) {
    if (names.has(a.name)) throw new StoreError('schema', `Cannot read token store "${where}": account "${a.name}" appears twice`);
    names.add(a.name);
    for (const t of a.tokens) {
      if (keys.has(t.key_id)) throw new StoreError('schema', `Cannot read token store "${where}": key id ${t.key_id} appears twice`);
      keys.add(t.key_id);
    }
  }
  return r.data;
}
