/**
 * Route matching: host (case-insensitive, without port and trailing dot),
 * normalized path (case-sensitive; exact, `*` one segment, `**` any depth)
 * and method. First match in file order wins (DESIGN.md §10).
 */

export interface RouteMatcher {
  readonly host: string | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly pattern: string;
  matchesPath(path: string): boolean;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Compiles a path pattern to a predicate. */
export function compilePathPattern(pattern: string): (path: string) => boolean {
  if (!pattern.includes('*')) return (p) => p === pattern;
  if (pattern === '/**') return () => true;
  const deep = pattern.endsWith('/**');
  const head = deep ? pattern.slice(0, -3) : pattern;
  if (deep && !head.includes('*')) {
    const prefix = head + '/';
    return (p) => p === head || p.startsWith(prefix);
  }
  const body = head
    .split('/')
    .map((seg) => (seg === '*' ? '[^/]+' : escapeRegExp(seg)))
    .join('/');
  const re = new RegExp(`^${body}${deep ? '(?:/.*)?' : ''}$`);
  return (p) => re.test(p);
}

/** Lower-cases a Host value and drops its port and trailing dot. */
export function normalizeHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(':');
  if (colon !== -1) h = h.slice(0, colon);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

export function compileHost(host: string | undefined): ((h: string) => boolean) | undefined {
  if (host === undefined) return undefined;
  const want = normalizeHost(host);
  if (want.startsWith('*.')) {
    const suffix = want.slice(1);
    return (h) => h.endsWith(suffix) && h.length > suffix.length;
  }
  return (h) => h === want;
}

/** Applies strip_prefix at a segment boundary: `/billing/x` → `/x`, `/billing` → `/`. */
export function stripPrefix(path: string, prefix: string | undefined): string {
  if (prefix === undefined) return path;
  if (path === prefix) return '/';
  if (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47) return path.slice(prefix.length);
  return path;
}

/**
 * True when pattern `a` matches every path that pattern `b` matches
 * (conservative: false when unsure). Used to warn about shadowed routes.
 */
export function patternCovers(a: string, b: string): boolean {
  if (a === b) return true;
  const as = a.split('/');
  const bs = b.split('/');
  for (let i = 1; i < as.length; i++) {
    const x = as[i] as string;
    const y = bs[i];
    if (x === '**') return i === as.length - 1;
    if (y === undefined) return false;
    if (y === '**') return false;
    if (x === '*') {
      if (y === '') return false;
      continue;
    }
    if (x !== y) return false;
  }
  return as.length === bs.length;
}
