import t from 'tap';
import { AccountError, createAccount, deleteAccount, parseTeams, revokeAccount, rotateToken, tokenExpiry, tokenStatus, type AccountPolicy } from '../../../src/authn/accounts.js';
import { emptyStore } from '../../../src/authn/store-data.js';

const policy: AccountPolicy = { prefix: 'gth', maxLifetime: '24mo', roles: new Set(['admin', 'viewer']) };
const now = new Date('2026-01-31T12:00:00Z');

t.test('tokenExpiry() uses calendar months and refuses past max_lifetime', async (t) => {
  t.equal(tokenExpiry(now, '6mo', '24mo').toISOString(), '2026-07-31T12:00:00.000Z');
  t.equal(tokenExpiry(now, '12mo', '24mo').toISOString(), '2027-01-31T12:00:00.000Z');
  t.equal(tokenExpiry(now, '24mo', '24mo').toISOString(), '2028-01-31T12:00:00.000Z');
  t.equal(tokenExpiry(now, '2s', '24mo').toISOString(), '2026-01-31T12:00:02.000Z');
  t.throws(() => tokenExpiry(now, '25mo', '24mo'), AccountError);
  t.throws(() => tokenExpiry(now, '0s', '24mo'), AccountError);
  t.throws(() => tokenExpiry(now, 'soon', '24mo'), AccountError);
});

t.test('createAccount() refuses duplicates and undeclared roles; stores only a hash', async (t) => {
  const data = emptyStore();
  const r = createAccount(data, { name: 'a', role: 'viewer', teams: parseTeams(['finance:admin', 'ops'], policy.roles), description: '', expiresIn: '12mo' }, policy, now);
  t.same(data.accounts[0]?.teams, { finance: 'admin', ops: null });
  t.notOk(JSON.stringify(data).includes(r.token.slice(17, 60)));
  t.throws(() => createAccount(data, { name: 'a', role: 'viewer', teams: {}, description: '', expiresIn: '12mo' }, policy, now), /already exists/);
  t.throws(() => createAccount(data, { name: 'b', role: 'root', teams: {}, description: '', expiresIn: '12mo' }, policy, now), /unknown role "root"/);
  t.throws(() => createAccount(data, { name: 'bad name', role: 'viewer', teams: {}, description: '', expiresIn: '12mo' }, policy, now), /invalid account name/);
  t.throws(() => parseTeams(['x:root'], policy.roles), /unknown role "root" for team "x"/);
});

t.test('rotateToken() ends old tokens now, or after the grace period; revoke ends grace too', async (t) => {
  const data = emptyStore();
  const first = createAccount(data, { name: 'a', role: 'viewer', teams: {}, description: '', expiresIn: '12mo' }, policy, now);
  const second = rotateToken(data, 'a', { expiresIn: '12mo' }, policy, now);
  const tokens = data.accounts[0]!.tokens;
  t.equal(tokenStatus(tokens[0]!, now.getTime()), 'revoked', 'no grace: revoked at once');
  t.same(second.previous.map((p) => p.keyId), [first.keyId]);
  const later = new Date(now.getTime() + 1000);
  const third = rotateToken(data, 'a', { grace: '1h', expiresIn: '12mo' }, policy, later);
  t.equal(tokenStatus(tokens[1]!, later.getTime()), 'grace');
  t.equal(tokenStatus(tokens[1]!, later.getTime() + 3_600_000), 'revoked');
  t.equal(tokenStatus(tokens[2]!, later.getTime()), 'active');
  t.same(revokeAccount(data, 'a', later).sort(), [second.keyId, third.keyId].sort());
  t.equal(tokenStatus(tokens[1]!, later.getTime()), 'revoked');
  t.equal(tokenStatus(tokens[2]!, now.getTime() + 400 * 86_400_000), 'revoked', 'revoked wins over expired');
  deleteAccount(data, 'a');
  t.equal(data.accounts.length, 0);
  t.throws(() => deleteAccount(data, 'a'), /unknown account "a"/);
});
