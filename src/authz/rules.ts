/**
 * Authorization (DESIGN.md §2): role hierarchy, team-scoped roles, and a
 * route's `allow` entries compiled once into a predicate. Deny by default.
 */
import type { Principal } from '../authn/authenticator.js';
import type { AllowEntry, Config } from '../config/schema.js';

export class RoleGraph {
  /** role → itself and every role it includes, transitively. */
  readonly #closure = new Map<string, readonly string[]>();

  constructor(roles: Config['roles']) {
    const visit = (r: string, acc: Set<string>) => {
      if (acc.has(r)) return;
      acc.add(r);
      for (const inc of roles[r]?.includes ?? []) visit(inc, acc);
    };
    for (const r of Object.keys(roles)) {
      const acc = new Set<string>();
      visit(r, acc);
      this.#closure.set(r, [...acc]);
    }
  }

  has(role: string): boolean {
    return this.#closure.has(role);
  }

  /** Expands roles through the hierarchy; undeclared roles stay as they are. */
  expand(roles: Iterable<string>): Set<string> {
    const out = new Set<string>();
    for (const r of roles) {
      const c = this.#closure.get(r);
      if (c) for (const x of c) out.add(x);
      else out.add(r);
    }
    return out;
  }
}

/** The roles a principal holds on a route: global roles plus its role in the route's team, expanded. */
export function effectiveRoles(p: Principal, team: string | undefined, graph: RoleGraph): Set<string> {
  const teamRole = team === undefined ? undefined : p.teams.get(team);
  return graph.expand(teamRole === undefined ? p.roles : [...p.roles, teamRole]);
}

export type AuthzDecision =
  | { allowed: true; roles: Set<string> }
  | { allowed: false; roles: Set<string>; reason: 'role_missing' | 'team_missing' | 'scope_missing'; missingScopes: string[] };

export type Authorizer = (p: Principal) => AuthzDecision;

/**
 * Compiles a route's allow list: any entry suffices; within one entry, all
 * conditions must hold. A decision depends only on the principal and the
 * compiled configuration, and principals are immutable and reused (one per
 * stored token, one per cached JWT): decisions are kept per principal, so a
 * repeat caller costs one WeakMap lookup (a reload compiles a fresh route).
 */
export function compileAllow(allow: readonly AllowEntry[], team: string | undefined, graph: RoleGraph): Authorizer {
  const decide = decider(allow, team, graph);
  const decisions = new WeakMap<Principal, AuthzDecision>();
  return (p) => {
    let d = decisions.get(p);
    if (d === undefined) {
      d = decide(p);
      decisions.set(p, d);
    }
    return d;
  };
}

function decider(allow: readonly AllowEntry[], team: string | undefined, graph: RoleGraph): Authorizer {
  const entries = allow.map((e) => ({
    roles: e.roles,
    teams: e.teams,
    scopes: e.scopes,
  }));
  return (p) => {
    const roles = effectiveRoles(p, team, graph);
    let reason: 'role_missing' | 'team_missing' | 'scope_missing' | undefined;
    let missingScopes: string[] = [];
    for (const e of entries) {
      const roleOk = e.roles === undefined || e.roles.some((r) => roles.has(r));
      const teamOk = e.teams === undefined || e.teams.some((t) => p.teams.has(t));
      const missing = e.scopes === undefined ? [] : e.scopes.filter((s) => !p.scopes.includes(s));
      if (roleOk && teamOk && missing.length === 0) return { allowed: true, roles };
      // Report the most specific failure: a scope shortfall only when it was the sole obstacle.
      if (roleOk && teamOk) {
        if (reason === undefined || reason !== 'scope_missing') {
          reason = 'scope_missing';
          missingScopes = missing;
        }
      } else if (reason === undefined) {
        reason = roleOk ? 'team_missing' : 'role_missing';
      }
    }
    return { allowed: false, roles, reason: reason ?? 'role_missing', missingScopes };
  };
}
