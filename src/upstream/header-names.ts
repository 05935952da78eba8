/**
 * The names of the headers Gatehouse adds to every forwarded request,
 * registered with undici as names it need not check again (issue 6).
 *
 * undici 7 takes a request's header names through a table of well-known
 * names (`headerNameLowerCasedRecord`, lib/core/constants.js); a name not in
 * it is lower-cased and matched against the token grammar on every request.
 * The nine names Gatehouse adds (X-Forwarded-*, X-Request-Id,
 * X-Gatehouse-*) are constants, lower-case and valid tokens, and were
 * checked nine times a request: about 7 000 instructions. Entered in the
 * table as undici enters its own (the lower-case name mapped to itself),
 * they skip exactly that, and nothing else changes: values are still
 * checked, and any other name still is too.
 *
 * The table is undici's internal: if a version lacks it, nothing is
 * registered and requests take the checks as before.
 */
import { createRequire } from 'node:module';

/** RFC 9110 token, lower case. */
const LOWER_TOKEN = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

let table: Record<string, string> | undefined | null = null;

function undiciTable(): Record<string, string> | undefined {
  if (table === null) {
    table = undefined;
    try {
      const constants = createRequire(import.meta.url)('undici/lib/core/constants.js') as { headerNameLowerCasedRecord?: unknown };
      const t = constants.headerNameLowerCasedRecord;
      // The table maps every known name to its lower case, with no prototype to reach through.
      if (t !== null && typeof t === 'object' && Object.getPrototypeOf(t) === null && (t as Record<string, unknown>)['content-type'] === 'content-type') table = t as Record<string, string>;
    } catch {
      // Another layout of undici: no table, no shortcut.
    }
  }
  return table;
}

/** Registers lower-case header names with undici; returns whether its table was found. */
export function registerHeaderNames(names: readonly string[]): boolean {
  for (const n of names) if (!LOWER_TOKEN.test(n)) throw new Error(`not a lower-case header name: ${JSON.stringify(n)}`);
  const t = undiciTable();
  if (t === undefined) return false;
  for (const n of names) t[n] ??= n;
  return true;
}
