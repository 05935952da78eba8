import t from 'tap';
import type { Principal } from '../../../src/authn/authenticator.js';
import { compileAllow, RoleGraph } from '../../../src/authz/rules.js';

const graph = new RoleGraph({ admin: { includes: ['editor'] }, editor: { includes: ['viewer'] }, viewer: { includes: [] } });

function principal(roles: string[], teams: Record<string, string | undefined> = {}, scopes: string[] = []): Principal {
  return Object.freeze({ kind: 'service_account', subject: 'robot', roles: Object.freeze(roles), teams: new Map(Object.entries(teams)), scopes: Object.freeze(scopes), keyId: 'k1' }) as Principal;
}

t.test('roles through the hierarchy, team roles on team routes, scopes all required', async (t) => {
  const viewerRoute = compileAllow([{ roles: ['viewer'] }], undefined, graph);
  t.equal(viewerRoute(principal(['admin'])).allowed, true, 'admin includes viewer');
  t.match(viewerRoute(principal(['other'])), { allowed: false, reason: 'role_missing' });
  const teamRoute = compileAllow([{ roles: ['editor'] }], 'billing', graph);
  t.equal(teamRoute(principal(['viewer'], { billing: 'editor' })).allowed, true, 'editor in the route team');
  t.equal(teamRoute(principal(['viewer'], { other: 'editor' })).allowed, false, 'editor in another team');
  const scoped = compileAllow([{ scopes: ['a.read', 'a.write'] }], undefined, graph);
  t.match(scoped(principal([], {}, ['a.read'])), { allowed: false, reason: 'scope_missing', missingScopes: ['a.write'] });
});

t.test('a decision is kept per principal: the same caller is decided once, another on its own', async (t) => {
  const route = compileAllow([{ roles: ['editor'] }], undefined, graph);
  const editor = principal(['editor']);
  const first = route(editor);
  t.equal(route(editor), first, 'the same decision object for the same principal');
  const viewer = principal(['viewer']);
  t.equal(route(viewer).allowed, false, 'another principal is not given the cached decision');
  t.equal(route(editor).allowed, true);
  const recompiled = compileAllow([{ roles: ['admin'] }], undefined, graph);
  t.equal(recompiled(editor).allowed, false, 'a recompiled route (reload) decides afresh');
});
