/**
 * Lower-casing of header names and values on the request path without
 * String.prototype.toLowerCase() when it would change nothing (issue 6).
 * With ICU, toLowerCase() is the locale-aware builtin: some 550
 * instructions a call however short the string, a fresh string each time,
 * and the request path made ~16 such calls a request, mostly on names that
 * were lower-case already (instruction counts under callgrind). A scan of
 * the characters decides first; anything outside ASCII still goes through
 * toLowerCase(), so every result is exactly what toLowerCase() returns.
 */

/** True when toLowerCase() might change `s`: an upper-case ASCII letter, or anything outside ASCII. */
function mayChangeCase(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 65 && c <= 90) || c > 127) return true;
  }
  return false;
}

/** `s.toLowerCase()`, without the call when `s` is lower-case ASCII already. */
export function lowerCase(s: string): string {
  return mayChangeCase(s) ? s.toLowerCase() : s;
}

/**
 * `s.toLowerCase() === lower` for `lower` in lower-case ASCII, without
 * building the lower-cased string. Header text is Latin-1 (one byte a
 * character), and no Latin-1 character outside ASCII lower-cases into
 * ASCII, so comparing ASCII letters case-insensitively is the same test.
 */
export function equalsLowerCase(s: string, lower: string): boolean {
  if (s.length !== lower.length) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const l = lower.charCodeAt(i);
    if (c !== l && !(c >= 65 && c <= 90 && c + 32 === l)) return false;
  }
  return true;
}
