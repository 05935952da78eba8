import { GatewayError } from '../errors.js';
import type { RequestContext } from './context.js';

/** The authorize stage: the route's compiled allow rules; deny by default. */
export function authorizeStage(ctx: RequestContext): void {
  const route = ctx.route;
  const p = ctx.principal;
  if (!route?.authorize || !p) throw new GatewayError('GW_FORBIDDEN', 'no principal or no rules', { reason: 'no_rule' });
  const d = route.authorize(p);
  ctx.roles = d.roles;
  if (d.allowed) return;
  throw new GatewayError('GW_FORBIDDEN', `route "${route.name}" refuses ${p.kind} "${p.subject}": ${d.reason}${d.missingScopes.length ? ` (${d.missingScopes.join(' ')})` : ''}`, {
    reason: d.reason,
    ...(d.reason === 'scope_missing' ? { bearerError: 'insufficient_scope' as const } : {}),
  });
}
