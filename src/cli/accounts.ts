/**
 * `gatehouse accounts create|list|show|rotate|revoke|delete` (DESIGN.md §6).
 *
 * A token is printed exactly once, on stdout, by `create` and `rotate` (with
 * a warning on stderr); listings show key ids only. Exit codes: 0 done,
 * 1 refused (unknown account, duplicate name, unknown role, unreadable
 * store), 2 usage.
 */
import {
  AccountError,
  createAccount,
  deleteAccount,
  describeAccount,
  parseTeams,
  revokeAccount,
  rotateToken,
  tokenStatus,
  type AccountPolicy,
} from '../authn/accounts.js';
import { openTokenStore, StoreError, type Account, type TokenStore } from '../authn/token-store.js';
import { appendAuditEvents, eventBody, type AuditEvent } from '../audit/append.js';
import { auditFilePath } from '../audit/plugin.js';
import { ConfigError, formatIssue, loadConfigFile } from '../config/load.js';
import { parseDuration } from '../util/units.js';
import { configPath, EXIT_OK, EXIT_REFUSED, parse, UsageError, type CliIo } from './args.js';

const USAGE = `Usage:
  gatehouse accounts create NAME --role R [--team T[:ROLE]]... [--expires-in 12mo] [--description TEXT] [--json]
  gatehouse accounts list [--json]
  gatehouse accounts show NAME [--json]
  gatehouse accounts rotate NAME [--grace 1h] [--expires-in 12mo] [--json]
  gatehouse accounts revoke NAME [--json]
  gatehouse accounts delete NAME [--json]
Every command takes -c FILE (default ./gateway.yaml, or $GATEHOUSE_CONFIG).`;

const OPTIONS = {
  role: { type: 'string' },
  team: { type: 'string', multiple: true },
  'expires-in': { type: 'string' },
  description: { type: 'string' },
  grace: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/**
 * Account operations leave audit events (DESIGN.md §7), appended to the
 * configured audit file under the audit log's own lock, chained like the
 * gateway's records. Never a token: key ids only. A failure to audit does not
 * undo the change (the token may already exist); it is reported on stderr.
 */
export async function onAccountEvent(events: AuditEvent[], ctx: { auditFile: string; io: CliIo }): Promise<void> {
  if (events.length === 0) return;
  // "-" means stdout for the gateway; here stdout carries the token alone, so use stderr.
  if (ctx.auditFile === '-') {
    for (const e of events) ctx.io.err(eventBody(e));
    return;
  }
  try {
    await appendAuditEvents(ctx.auditFile, events);
  } catch (err) {
    ctx.io.err(`warning: the change is done, but its audit record could not be written to "${ctx.auditFile}": ${(err as Error).message}`);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function teamsText(a: Account): string {
  return Object.entries(a.teams)
    .map(([t, r]) => (r === null ? t : `${t}:${r}`))
    .join(',') || '-';
}

function day(iso: string | undefined): string {
  return iso === undefined ? '-' : iso.replace(/\.\d{3}Z$/, 'Z');
}

/** The newest token of an account: what `list` shows. */
function newest(a: Account) {
  return a.tokens.reduce<Account['tokens'][number] | undefined>((best, t) => (best === undefined || t.created >= best.created ? t : best), undefined);
}

export async function accountsCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS);
  const [sub, name, ...extra] = positionals;
  if (values.help || sub === undefined) {
    io.out(USAGE);
    return values.help ? EXIT_OK : 2;
  }
  const needsName = sub !== 'list';
  if (!['create', 'list', 'show', 'rotate', 'revoke', 'delete'].includes(sub)) throw new UsageError(`unknown subcommand "${sub}"\n${USAGE}`);
  if (needsName && name === undefined) throw new UsageError(`accounts ${sub} needs an account NAME\n${USAGE}`);
  if (!needsName && name !== undefined) throw new UsageError(`accounts list takes no NAME`);
  if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const allowed: Record<string, readonly string[]> = {
    create: ['role', 'team', 'expires-in', 'description', 'json'],
    rotate: ['grace', 'expires-in', 'json'],
  };
  for (const k of Object.keys(values)) {
    if (k === 'config' || k === 'help' || k === 'json') continue;
    if (!(allowed[sub] ?? []).includes(k)) throw new UsageError(`accounts ${sub} does not take --${k}`);
  }
  if (sub === 'create' && values.role === undefined) throw new UsageError('accounts create needs --role R');
  for (const k of ['expires-in', 'grace'] as const) {
    const v = values[k];
    if (v !== undefined && parseDuration(v) === undefined) throw new UsageError(`--${k}: expected a duration such as "6mo", "12mo", "24mo", "30d" or "1h", got "${v}"`);
  }

  const file = configPath(values, io.env);
  let store: TokenStore;
  let policy: AccountPolicy;
  let auditFile: string;
  try {
    const { config, source } = loadConfigFile(file, io.env);
    policy = { prefix: config.accounts.token_prefix, maxLifetime: config.accounts.max_lifetime, roles: new Set(Object.keys(config.roles)) };
    auditFile = auditFilePath(config.audit.file, source.baseDir);
    store = openTokenStore(config.store, { baseDir: source.baseDir });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) io.err(formatIssue(i));
      io.err(`${file}: configuration refused`);
      return EXIT_REFUSED;
    }
    if (err instanceof StoreError) {
      io.err(`gatehouse accounts: ${err.message}`);
      return EXIT_REFUSED;
    }
    throw err;
  }

  const json = values.json === true;
  const now = new Date();
  const emit = (...events: AuditEvent[]) => onAccountEvent(events, { auditFile, io });
  try {
    switch (sub) {
      case 'list': {
        const accounts = store.current().accounts;
        if (json) {
          io.out(JSON.stringify(accounts.map((a) => describeAccount(a, now.getTime())), null, 2));
          return EXIT_OK;
        }
        if (accounts.length === 0) {
          io.out('no service accounts');
          return EXIT_OK;
        }
        const rows = [['NAME', 'ROLE', 'TEAMS', 'KEY ID', 'STATUS', 'EXPIRES', 'LAST USED']];
        for (const a of accounts) {
          const t = newest(a);
          rows.push([a.name, a.role, teamsText(a), t?.key_id ?? '-', t ? tokenStatus(t, now.getTime()) : '-', day(t?.expires), day(t?.last_used)]);
        }
        io.out(table(rows));
        return EXIT_OK;
      }
      case 'show': {
        const a = store.current().account(name!);
        if (!a) throw new AccountError(`unknown account "${name}"`);
        const d = describeAccount(a, now.getTime());
        if (json) {
          io.out(JSON.stringify(d, null, 2));
          return EXIT_OK;
        }
        const lines = [`name:        ${a.name}`, `description: ${a.description || '-'}`, `role:        ${a.role}`, `teams:       ${teamsText(a)}`, `created:     ${day(a.created)}`, 'tokens:'];
        const rows = [['  KEY ID', 'STATUS', 'CREATED', 'EXPIRES', 'REVOKED', 'LAST USED']];
        for (const t of d.tokens) rows.push([`  ${t.key_id}`, t.status, day(t.created), day(t.expires), day(t.revoked), day(t.last_used)]);
        io.out(lines.join('\n') + '\n' + table(rows));
        return EXIT_OK;
      }
      case 'create': {
        const teams = parseTeams(values.team ?? [], policy.roles);
        const r = await store.update((data) =>
          createAccount(data, { name: name!, role: values.role!, teams, description: values.description ?? '', expiresIn: values['expires-in'] ?? '12mo' }, policy, now),
        );
        await emit({ event: 'account.created', account: r.account.name, key_id: r.keyId, role: r.account.role, teams: r.account.teams, expires: r.expires });
        io.err(`Created service account "${r.account.name}" (role ${r.account.role}, key id ${r.keyId}, expires ${day(r.expires)}).\nWARNING: the token below is shown only this once. Store it in a secret manager now; it cannot be shown again.`);
        io.out(json ? JSON.stringify({ name: r.account.name, key_id: r.keyId, expires: r.expires, token: r.token }) : r.token);
        return EXIT_OK;
      }
      case 'rotate': {
        const r = await store.update((data) => rotateToken(data, name!, { grace: values.grace, expiresIn: values['expires-in'] ?? '12mo' }, policy, now));
        await emit({ event: 'token.rotated', account: r.account.name, key_id: r.keyId, expires: r.expires, previous: r.previous.map((p) => ({ key_id: p.keyId, until: p.until })) });
        const old = r.previous.map((p) => `${p.keyId} ${Date.parse(p.until) <= now.getTime() ? 'revoked now' : `valid until ${day(p.until)}`}`).join('; ') || 'none';
        io.err(`Rotated the token of service account "${r.account.name}": new key id ${r.keyId}, expires ${day(r.expires)}; previous: ${old}.\nWARNING: the token below is shown only this once. Store it in a secret manager now; it cannot be shown again.`);
        io.out(json ? JSON.stringify({ name: r.account.name, key_id: r.keyId, expires: r.expires, token: r.token, previous: r.previous.map((p) => ({ key_id: p.keyId, until: p.until })) }) : r.token);
        return EXIT_OK;
      }
      case 'revoke': {
        const ids = await store.update((data) => revokeAccount(data, name!, now));
        await emit(...ids.map((id) => ({ event: 'token.revoked', account: name!, key_id: id, reason: 'revoked_by_operator' })));
        if (json) io.out(JSON.stringify({ name, revoked: ids }));
        else io.out(ids.length ? `revoked ${ids.length} token${ids.length === 1 ? '' : 's'} of "${name}": ${ids.join(', ')}` : `"${name}" had no valid token; nothing to revoke`);
        return EXIT_OK;
      }
      case 'delete': {
        const a = await store.update((data) => deleteAccount(data, name!));
        await emit({ event: 'account.deleted', account: a.name, key_ids: a.tokens.map((t) => t.key_id) });
        if (json) io.out(JSON.stringify({ name: a.name, deleted: true }));
        else io.out(`deleted service account "${a.name}" and its ${a.tokens.length} token${a.tokens.length === 1 ? '' : 's'}`);
        return EXIT_OK;
      }
    }
    return EXIT_OK;
  } catch (err) {
    if (err instanceof AccountError || err instanceof StoreError) {
      io.err(`gatehouse accounts ${sub}: ${err.message}`);
      return EXIT_REFUSED;
    }
    throw err;
  } finally {
    await store.close();
  }
}
