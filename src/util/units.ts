/** Durations (`500ms`, `30s`, `5m`, `12h`, `90d`, `6mo`) and sizes (`64kb`, `10mb`) of gateway.yaml. */

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|mo|y)$/;
const DURATION_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  // A month is 30 days and a year 365 days wherever a duration is a plain
  // length of time; token lifetimes use calendar months (addDuration).
  mo: 30 * 86_400_000,
  y: 365 * 86_400_000,
};

export interface ParsedDuration {
  ms: number;
  /** Calendar months, when the duration was written in `mo` or `y`. */
  months: number | undefined;
}

export function parseDurationParts(text: string): ParsedDuration | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] as string;
  if (!Number.isFinite(n)) return undefined;
  const months = unit === 'mo' ? n : unit === 'y' ? n * 12 : undefined;
  return { ms: Math.round(n * (DURATION_MS[unit] as number)), months: months !== undefined && Number.isInteger(months) ? months : undefined };
}

/** Milliseconds, or undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  return parseDurationParts(text)?.ms;
}

/** Adds a duration to a date; whole `mo`/`y` durations are calendar months. */
export function addDuration(from: Date, text: string): Date | undefined {
  const d = parseDurationParts(text);
  if (!d) return undefined;
  if (d.months !== undefined) {
    const out = new Date(from.getTime());
    out.setUTCMonth(out.getUTCMonth() + d.months);
    return out;
  }
  return new Date(from.getTime() + d.ms);
}

const SIZE = /^(\d+(?:\.\d+)?)(b|kb|mb|gb)$/i;
const SIZE_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Bytes, or undefined when the text is not a size. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text.trim());
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * (SIZE_BYTES[(m[2] as string).toLowerCase()] as number));
}

/** `host:port`, `[v6]:port` or `:port` → parts. */
export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
