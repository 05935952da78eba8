/**
 * `gatehouse audit [--account NAME] [--since 24h] [--follow] [--json]` and
 * `gatehouse audit verify [FILE]` (DESIGN.md §6, §7).
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { auditFileFor } from '../audit/append.js';
import { readHead, verifyText } from '../audit/chain.js';
import { parseDuration } from '../util/units.js';
import { configPath, EXIT_OK, EXIT_REFUSED, parse, UsageError, type CliIo } from './args.js';

interface Row {
  time?: string;
  event?: string;
  principal?: { kind?: string; subject?: string } | null;
  account?: string;
  method?: string;
  path?: string;
  status?: number;
  decision?: string;
  reason?: string | null;
  route?: string | null;
}

export async function auditCommand(args: string[], io: CliIo): Promise<number> {
  if (args.includes('verify')) return verifyCommand(args.filter((a, i) => i !== args.indexOf('verify')), io);
  const { values, positionals } = parse(args, {
    account: { type: 'string' },
    since: { type: 'string' },
    follow: { type: 'boolean', short: 'f' },
    json: { type: 'boolean' },
  });
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}" (did you mean "audit verify"?)`);
  let since: number | undefined;
  if (values.since !== undefined) {
    const ms = parseDuration(values.since);
    if (ms === undefined) throw new UsageError(`--since expects a duration such as "24h" or "7d", got "${values.since}"`);
    since = Date.now() - ms;
  }
  const file = auditFileFor(configPath(values, io.env), io.env);
  if (file === '-') {
    io.err('gatehouse audit: audit.file is "-" (stdout): there is no file to read');
    return EXIT_REFUSED;
  }
  const keep = (r: Row): boolean => {
    if (since !== undefined && !(Date.parse(r.time ?? '') >= since)) return false;
    if (values.account !== undefined) {
      const p = r.principal;
      const mine = (p?.kind === 'service_account' && p.subject === values.account) || r.account === values.account;
      if (!mine) return false;
    }
    return true;
  };
  let header = false;
  const print = (line: string) => {
    let r: Row;
    try {
      r = JSON.parse(line) as Row;
    } catch {
      return;
    }
    if (!keep(r)) return;
    if (values.json) return io.out(line);
    if (!header) {
      io.out(formatRow(['TIME', 'EVENT', 'PRINCIPAL', 'REQUEST', 'STATUS', 'DECISION', 'REASON']));
      header = true;
    }
    io.out(formatRow(columns(r)));
  };
  let offset = 0;
  if (existsSync(file)) {
    const buf = readFileSync(file);
    const end = buf.lastIndexOf(0x0a) + 1;
    for (const line of buf.subarray(0, end).toString('utf8').split('\n')) if (line) print(line);
    offset = end;
  } else if (!values.follow) {
    io.err(`gatehouse audit: ${file} does not exist yet`);
    return EXIT_OK;
  }
  if (!values.follow) return EXIT_OK;
  await follow(file, offset, print);
  return EXIT_OK;
}

/** `tail -F`: prints complete lines as they are appended; starts over when the file is rotated. */
async function follow(file: string, from: number, print: (line: string) => void): Promise<never> {
  let offset = from;
  let ino = existsSync(file) ? statSync(file).ino : 0;
  let rest = '';
  for (;;) {
    await sleep(250);
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      continue;
    }
    try {
      const st = fstatSync(fd);
      if (st.ino !== ino || st.size < offset) {
        ino = st.ino;
        offset = 0;
        rest = '';
      }
      if (st.size > offset) {
        const buf = Buffer.alloc(st.size - offset);
        readSync(fd, buf, 0, buf.length, offset);
        offset = st.size;
        const text = rest + buf.toString('utf8');
        const lines = text.split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) if (l) print(l);
      }
    } finally {
      closeSync(fd);
    }
  }
}

function columns(r: Row): string[] {
  const p = r.principal;
  const who = p ? `${p.kind === 'service_account' ? 'sa' : (p.kind ?? '?')}:${p.subject ?? '?'}` : '-';
  const what = r.event === 'request' ? `${r.method ?? ''} ${r.path ?? ''}` : (r.account ?? '');
  return [r.time ?? '', r.event ?? '', who, what, r.status === undefined ? '' : String(r.status), r.decision ?? '', r.reason ?? ''];
}

const WIDTHS = [24, 16, 24, 40, 6, 8, 0];

function formatRow(cols: string[]): string {
  return cols
    .map((c, i) => {
      const w = WIDTHS[i] ?? 0;
      if (!w) return c;
      const v = c.length > w ? c.slice(0, w - 1) + '…' : c;
      return v.padEnd(w);
    })
    .join(' ')
    .trimEnd();
}

/** `gatehouse audit verify [FILE]`: exit 0 when the chain holds, 1 naming the first broken line. */
export async function verifyCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (positionals.length > 1) throw new UsageError('audit verify takes at most one FILE');
  const file = positionals[0] ?? auditFileFor(configPath(values, io.env), io.env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    io.err(`gatehouse audit verify: cannot read ${file}: ${(err as Error).message}`);
    return EXIT_REFUSED;
  }
  const r = verifyText(text, { head: readHead(file) });
  if (r.ok) {
    io.out(`${file}: OK (${r.records} record${r.records === 1 ? '' : 's'}, hash chain intact)`);
    return EXIT_OK;
  }
  io.err(`${file}:${r.line}: ${r.message}`);
  io.err(`${file}: hash chain BROKEN at line ${r.line} (${r.records} record${r.records === 1 ? '' : 's'} verified before it)`);
  return EXIT_REFUSED;
}
