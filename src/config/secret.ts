import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SecretSource } from './schema.js';

/**
 * Resolves a secret value: a string is itself (already `${VAR}`-substituted),
 * `{ file }` is read relative to the config file with one trailing newline
 * dropped. Errors name the file, never the value.
 */
export function resolveSecret(src: SecretSource, baseDir: string): string {
  if (typeof src === 'string') return src;
  const path = resolve(baseDir, src.file);
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
