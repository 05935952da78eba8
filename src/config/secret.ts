import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { stampFile, type Stamps } from '../util/file-poll.js';
import { sha256 } from '../util/sha256.js';
import type { SecretSource } from './schema.js';

function readSecretFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const value = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  if (!value) throw new Error(`secret file ${path} is empty`);
  return value;
}

function isFileSecret(v: unknown): v is { file: string } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { file?: unknown }).file === 'string';
}

/**
 * Resolves secrets for one load of the configuration: a string is itself
 * (already `${VAR}`-substituted), `{ file }` is read relative to the config
 * file with one trailing newline dropped. Each file is read once, stamped
 * before the read (`stamps`, for the file watcher: a rotated secret file
 * reloads the configuration). Errors name the file, never the value.
 */
export class SecretReader {
  readonly baseDir: string;
  readonly stamps: Stamps;
  readonly #values = new Map<string, string>();

  constructor(baseDir: string, stamps: Stamps = new Map()) {
    this.baseDir = baseDir;
    this.stamps = stamps;
  }

  read(src: SecretSource): string {
    if (typeof src === 'string') return src;
    const path = resolve(this.baseDir, src.file);
    let value = this.#values.get(path);
    if (value === undefined) {
      this.stamps.set(path, stampFile(path));
      value = readSecretFile(path);
      this.#values.set(path, value);
    }
    return value;
  }

  /**
   * A digest of every `{ file }` secret inside a configuration subtree, for
   * the spec of the resource built from it: a changed file then rebuilds the
   * resource on reload instead of reusing one that holds the old secret.
   */
  digest(tree: unknown): string {
    const values: string[] = [];
    const walk = (v: unknown): void => {
      if (isFileSecret(v)) values.push(this.read(v));
      else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) walk(x);
    };
    walk(tree);
    return values.length === 0 ? '' : sha256(values.join('\0'), 'hex');
  }
}
