/**
 * `gatehouse explain [--token T] [--json] METHOD URL`: offline, from the
 * configuration and the token store, says which route a request matches,
 * who the token is (or why it is refused), how each allow rule fares, and
 * the decision with its reason. It runs the gateway's own stages (request
 * checks, route match, authenticators, compiled rules), never a copy of
 * them. The token is never printed: only its key id. Exit 0 when the
 * request would be allowed, 1 when refused (as `kubectl auth can-i`), so
 * that a script can ask.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { NOT_RESPONSIBLE, type Principal } from '../authn/authenticator.js';
import { effectiveRoles } from '../authz/rules.js';
import { compile } from '../config/compile.js';
import { ConfigError, formatIssue, loadConfigFile } from '../config/load.js';
import { Resources } from '../config/resources.js';
import { GatewayError } from '../errors.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { bearerToken } from '../pipeline/authenticate.js';
import { RequestContext } from '../pipeline/context.js';
import { checkRequest } from '../pipeline/request-checks.js';
import { matchRoute } from '../pipeline/run.js';
import { configPath, EXIT_OK, EXIT_REFUSED, parse, UsageError, type CliIo } from './args.js';

interface RuleResult {
  index: number;
  roles?: string[];
  teams?: string[];
  scopes?: string[];
  holds: boolean;
  why: string;
}

interface Explanation {
  request: { method: string; host: string; path: string };
  route: { name: string; index: number; public: boolean; team?: string; upstream?: string } | null;
  authentication: { authenticator: string; principal: { kind: string; subject: string; roles: string[]; teams: Record<string, string | null>; scopes: string[]; key_id?: string } } | { refused: string; detail: string } | null;
  effective_roles?: string[];
  rules: RuleResult[];
  decision: 'allow' | 'deny' | 'error';
  status: number;
  reason: string;
}

function refusal(err: unknown): { status: number; reason: string; detail: string; decision: 'deny' | 'error' } {
  const e = err instanceof GatewayError ? err : new GatewayError('GW_INTERNAL', (err as Error).message);
  return { status: e.status, reason: e.reason, detail: e.message, decision: e.status >= 500 ? 'error' : 'deny' };
}

export async function explainCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { token: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length !== 2) throw new UsageError('usage: gatehouse explain [-c gateway.yaml] [--token T] [--json] METHOD URL');
  const method = positionals[0]!.toUpperCase();
  const target = positionals[1]!;
  let host = 'localhost';
  let pathAndQuery = target;
  if (/^https?:\/\//i.test(target)) {
    let u: URL;
    try {
      u = new URL(target);
    } catch {
      throw new UsageError(`not a URL: "${target}"`);
    }
    host = u.host;
    // Keep the path as written (no WHATWG normalization): the gateway's own checks judge it.
    const rest = target.slice(target.indexOf('//') + 2);
    const slash = rest.indexOf('/');
    pathAndQuery = slash === -1 ? '/' : rest.slice(slash);
  } else if (!target.startsWith('/')) throw new UsageError(`expected an absolute URL or a path starting with "/", got "${target}"`);

  const file = configPath(values, io.env);
  const resources = new Resources();
  const scope = resources.scope();
  try {
    let rt;
    try {
      const { config, source } = loadConfigFile(file, io.env);
      rt = compile(config, source, { scope, log: createLogger({ level: 'silent' }), metrics: new Metrics({ defaults: false }), mode: 'offline' });
    } catch (err) {
      if (err instanceof ConfigError) {
        for (const i of err.issues) io.err(formatIssue(i));
        io.err(`${file}: configuration refused`);
        return EXIT_REFUSED;
      }
      throw err;
    }
    const headers: Record<string, string> = { host };
    const req = { method, url: pathAndQuery, headers, rawHeaders: ['Host', host], httpVersion: '1.1', complete: true } as unknown as IncomingMessage;
    const ctx = new RequestContext(rt, req, undefined, { remoteAddress: '127.0.0.1' } as Socket);
    const out: Explanation = { request: { method, host, path: pathAndQuery }, route: null, authentication: null, rules: [], decision: 'deny', status: 0, reason: '' };
    const finish = (r: { status: number; reason: string; decision: Explanation['decision'] }) => {
      out.status = r.status;
      out.reason = r.reason;
      out.decision = r.decision;
      return report(out, values.json === true, io);
    };

    try {
      checkRequest(ctx);
      out.request.path = ctx.path;
      matchRoute(ctx);
    } catch (err) {
      return finish(refusal(err));
    }
    const route = ctx.route!;
    const rc = rt.config.routes[route.index]!;
    out.route = { name: route.name, index: route.index, public: route.public, ...(route.team !== undefined ? { team: route.team } : {}), ...(rc.upstream !== undefined ? { upstream: rc.upstream } : {}) };
    if (route.public) return finish({ status: rc.respond?.status ?? 200, reason: 'public', decision: 'allow' });

    let principal: Principal | undefined;
    try {
      const token = bearerToken(values.token === undefined ? undefined : `Bearer ${values.token}`);
      for (const a of route.authenticators) {
        const r = await a.authenticate(token, ctx);
        if (r === NOT_RESPONSIBLE) continue;
        principal = r;
        out.authentication = {
          authenticator: a.name,
          principal: {
            kind: r.kind,
            subject: r.subject,
            roles: [...r.roles],
            teams: Object.fromEntries([...r.teams].map(([k, v]) => [k, v ?? null])),
            scopes: [...r.scopes],
            ...(r.keyId !== undefined ? { key_id: r.keyId } : {}),
          },
        };
        break;
      }
      if (!principal) throw new GatewayError('GW_UNAUTHENTICATED', `none of this route's authenticators (${route.authenticators.map((a) => a.name).join(', ') || 'none'}) recognizes the token`, { reason: 'token_malformed' });
    } catch (err) {
      const r = refusal(err);
      out.authentication = { refused: r.reason, detail: r.detail };
      return finish(r);
    }

    const roles = effectiveRoles(principal, route.team, rt.roles);
    out.effective_roles = [...roles].sort();
    (rc.allow ?? []).forEach((e, index) => {
      const missing: string[] = [];
      if (e.roles && !e.roles.some((r) => roles.has(r))) missing.push(`none of roles [${e.roles.join(', ')}]`);
      if (e.teams && !e.teams.some((t) => principal.teams.has(t))) missing.push(`none of teams [${e.teams.join(', ')}]`);
      const noScopes = e.scopes?.filter((s) => !principal.scopes.includes(s)) ?? [];
      if (noScopes.length) missing.push(`scopes missing [${noScopes.join(', ')}]`);
      out.rules.push({ index, ...(e.roles ? { roles: e.roles } : {}), ...(e.teams ? { teams: e.teams } : {}), ...(e.scopes ? { scopes: e.scopes } : {}), holds: missing.length === 0, why: missing.length ? missing.join('; ') : 'holds' });
    });
    const d = route.authorize!(principal);
    return finish(d.allowed ? { status: 200, reason: 'granted', decision: 'allow' } : { status: 403, reason: d.reason, decision: 'deny' });
  } finally {
    await resources.rollback(scope);
  }
}

function report(x: Explanation, json: boolean, io: CliIo): number {
  const code = x.decision === 'allow' ? EXIT_OK : EXIT_REFUSED;
  if (json) {
    io.out(JSON.stringify(x, null, 2));
    return code;
  }
  const lines = [`request:   ${x.request.method} ${x.request.host}${x.request.path}`];
  if (x.route) {
    const r = x.route;
    lines.push(`route:     ${r.name} (routes[${r.index}])${r.public ? ', public' : ''}${r.team ? `, team ${r.team}` : ''}${r.upstream ? ` → upstream ${r.upstream}` : ''}`);
  } else lines.push('route:     none matches');
  const a = x.authentication;
  if (a && 'principal' in a) {
    const p = a.principal;
    const teams = Object.entries(p.teams).map(([t, r]) => (r === null ? t : `${t}:${r}`)).join(', ') || '-';
    lines.push(`caller:    ${p.kind} "${p.subject}" via ${a.authenticator}${p.key_id ? ` (key id ${p.key_id})` : ''}; roles ${p.roles.join(', ') || '-'}; teams ${teams}; scopes ${p.scopes.join(' ') || '-'}`);
  } else if (a) lines.push(`caller:    refused: ${a.refused} (${a.detail})`);
  if (x.effective_roles) lines.push(`roles:     effective on this route: ${x.effective_roles.join(', ') || '-'}`);
  if (x.rules.length) {
    lines.push('rules:     any one entry suffices');
    for (const r of x.rules) {
      const cond = [r.roles && `roles any of [${r.roles.join(', ')}]`, r.teams && `teams any of [${r.teams.join(', ')}]`, r.scopes && `scopes all of [${r.scopes.join(', ')}]`].filter(Boolean).join(' and ');
      lines.push(`  [${r.index}] ${cond}: ${r.holds ? 'yes' : `no — ${r.why}`}`);
    }
  }
  lines.push(`decision:  ${x.decision} (${x.reason}) → ${x.status}`);
  io.out(lines.join('\n'));
  return code;
}
