/**
 * Long-lived resources (upstream pools, token stores, JWKS caches, credential
 * managers) shared across configuration reloads: a reload that leaves an
 * upstream's or issuer's settings unchanged keeps its warm pool or cache.
 * A failed compile disposes what it created; a successful one disposes what
 * the new snapshot no longer uses.
 */

interface Entry {
  spec: string;
  value: unknown;
  dispose: () => unknown;
}

export class ResourceScope {
  readonly used = new Set<string>();
  readonly created = new Map<string, Entry>();
  readonly #owner: Resources;

  constructor(owner: Resources) {
    this.#owner = owner;
  }

  /**
   * Returns the resource under `key`, reused when its `spec` (a string that
   * captures every setting it was built from) is unchanged.
   */
  acquire<T>(key: string, spec: string, create: () => T, dispose: (value: T) => unknown): T {
    this.used.add(key);
    const fresh = this.created.get(key);
    if (fresh) return fresh.value as T;
    const existing = this.#owner.get(key);
    if (existing && existing.spec === spec) return existing.value as T;
    const value = create();
    this.created.set(key, { spec, value, dispose: () => dispose(value) });
    return value;
  }
}

export class Resources {
  readonly #items = new Map<string, Entry>();
  readonly #onError: (err: unknown, key: string) => void;

  constructor(onError: (err: unknown, key: string) => void = () => {}) {
    this.#onError = onError;
  }

  get(key: string): Entry | undefined {
    return this.#items.get(key);
  }

  scope(): ResourceScope {
    return new ResourceScope(this);
  }

  async #dispose(key: string, e: Entry): Promise<void> {
    try {
      await e.dispose();
    } catch (err) {
      this.#onError(err, key);
    }
  }

  /** The scope's snapshot is now in force: keep what it uses, dispose the rest. */
  async commit(scope: ResourceScope): Promise<void> {
    const old: [string, Entry][] = [];
    for (const [key, e] of scope.created) {
      const prev = this.#items.get(key);
      if (prev) old.push([key, prev]);
      this.#items.set(key, e);
    }
    for (const [key, e] of this.#items) {
      if (!scope.used.has(key)) {
        this.#items.delete(key);
        old.push([key, e]);
      }
    }
    await Promise.all(old.map(([k, e]) => this.#dispose(k, e)));
  }

  /** The scope's snapshot was refused: dispose only what it created. */
  async rollback(scope: ResourceScope): Promise<void> {
    await Promise.all([...scope.created].map(([k, e]) => this.#dispose(k, e)));
  }

  async closeAll(): Promise<void> {
    const all = [...this.#items];
    this.#items.clear();
    await Promise.all(all.map(([k, e]) => this.#dispose(k, e)));
  }
}
