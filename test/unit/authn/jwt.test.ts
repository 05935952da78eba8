import { createPublicKey } from 'node:crypto';
import { SignJWT, base64url } from 'jose';
import t, { type Test } from 'tap';
import { NOT_RESPONSIBLE, type Authenticator, type Principal } from '../../../src/authn/authenticator.js';
import { createIssuerState, JwtAuthenticator, type IssuerState, claimList, principalFrom } from '../../../src/authn/jwt.js';
import { OutcomeCache } from '../../../src/authn/outcome-cache.js';
import { configSchema, type IssuerConfig } from '../../../src/config/schema.js';
import { GatewayError } from '../../../src/errors.js';
import { Metrics } from '../../../src/metrics/metrics.js';
import type { RequestContext } from '../../../src/pipeline/context.js';
import { captureLogger } from '../../helpers/gateway.js';
import { makeKey, sign, signRawRs256, startJwks, type JwksServer, type TestKey } from '../../helpers/jwks.js';

const ISS = 'https://idp.test/realms/corp';

function issuerConfig(extra: Record<string, unknown>): IssuerConfig {
  const cfg = configSchema.parse({ issuers: { corp: { issuer: ISS, audience: 'legacy-api', algorithms: ['RS256', 'ES256', 'EdDSA'], ...extra } } });
  return cfg.issuers.corp as IssuerConfig;
}

interface Fixture {
  auth: JwtAuthenticator;
  state: IssuerState;
  metrics: Metrics;
  logs: string[];
  idp: JwksServer;
  rsa: TestKey;
  ec: TestKey;
  ed: TestKey;
}

async function fixture(t: Test, extra: Record<string, unknown> = {}, opts: { start?: boolean; name?: string } = {}): Promise<Fixture> {
  const [rsa, ec, ed] = await Promise.all([makeKey('RS256', 'rsa-1'), makeKey('ES256', 'ec-1'), makeKey('EdDSA', 'ed-1')]);
  const idp = await startJwks(t, [rsa.publicJwk, ec.publicJwk, ed.publicJwk]);
  const cfg = issuerConfig({ jwks_uri: idp.jwksUri, ...extra });
  const logs: string[] = [];
  const metrics = new Metrics({ defaults: false });
  const name = opts.name ?? 'corp';
  const state = createIssuerState(name, cfg, captureLogger(logs), metrics);
  t.teardown(() => state.close());
  if (opts.start !== false) {
    state.jwks.start();
    await until(() => state.jwks.ready() || idp.hits.length > 0 && idp.mode !== 'ok');
  }
  return { auth: new JwtAuthenticator(name, cfg, state), state, metrics, logs, idp, rsa, ec, ed };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 20));
}

/** A second, started entry "corp2" for the fixture's iss, with its own audience. */
async function sameIssuer(t: Test, f: Fixture, audience: string): Promise<JwtAuthenticator> {
  const cfg = issuerConfig({ jwks_uri: f.idp.jwksUri, audience });
  const state = createIssuerState('corp2', cfg, captureLogger([]), f.metrics);
  t.teardown(() => state.close());
  state.jwks.start();
  await until(() => state.jwks.ready());
  return new JwtAuthenticator('corp2', cfg, state);
}

const ctxFor = (...list: Authenticator[]) => ({ route: { authenticators: list } }) as unknown as RequestContext;

async function outcome(a: Authenticator, token: string, ctx = ctxFor(a)): Promise<Principal | typeof NOT_RESPONSIBLE | GatewayError> {
  try {
    return await a.authenticate(token, ctx);
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
}

async function reasonOf(a: Authenticator, token: string): Promise<string> {
  const out = await outcome(a, token);
  if (out instanceof GatewayError) return `${out.status} ${out.reason}`;
  return 'accepted';
}

const good = { iss: ISS, aud: 'legacy-api', sub: 'alice' };

t.test('authenticate() accepts RS256, ES256 and EdDSA tokens with the right claims', async (t) => {
  const f = await fixture(t, { claims: { roles: 'realm_access.roles', teams: 'groups', scopes: 'scope' } });
  for (const key of [f.rsa, f.ec, f.ed]) {
    const token = await sign(key, { ...good, realm_access: { roles: ['viewer'] }, groups: ['/finance', 'ops:operator'], scope: 'billing.read  billing.write' });
    const p = (await f.auth.authenticate(token, ctxFor(f.auth))) as Principal;
    t.equal(p.kind, 'jwt', key.alg);
    t.equal(p.subject, 'alice');
    t.same(p.roles, ['viewer']);
    t.same([...p.teams], [['finance', undefined], ['ops', 'operator']]);
    t.same(p.scopes, ['billing.read', 'billing.write']);
    t.equal(p.issuer, 'corp');
    t.equal(p.kid, key.kid);
  }
  t.ok(f.auth.ready());
  t.notOk(f.logs.some((l) => l.includes('eyJ')), 'no token in the log');
});

t.test('authenticate() refuses each forged or invalid token with its reason', async (t) => {
  const f = await fixture(t, { clock_skew: '5s' });
  const now = Math.floor(Date.now() / 1000);
  const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
  const pem = createPublicKey({ key: f.rsa.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
  const hs = await new SignJWT({ ...good, exp: now + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' }).sign(new TextEncoder().encode(pem));
  const attacker = await makeKey('RS256', 'rsa-1');
  const other = await makeKey('RS256', 'evil');
  const cases: [string, string | Promise<string>, string][] = [
    ['alg none', `${enc({ alg: 'none', kid: 'rsa-1' })}.${enc({ ...good, exp: now + 60 })}.`, '401 jwt_alg_not_allowed'],
    ['alg none with a fake signature', `${enc({ alg: 'none' })}.${enc({ ...good, exp: now + 60 })}.AAAA`, '401 jwt_alg_not_allowed'],
    ['HS256 signed with the public key', hs, '401 jwt_alg_not_allowed'],
    ['wrong aud', sign(f.rsa, { ...good, aud: 'other-api' }), '401 jwt_audience'],
    ['missing aud', sign(f.rsa, { iss: ISS, sub: 'alice' }), '401 jwt_claim_missing'],
    ['wrong iss', sign(f.rsa, { ...good, iss: 'https://evil.test' }), '401 jwt_issuer'],
    ['no iss', sign(f.rsa, { aud: 'legacy-api', sub: 'alice' }), '401 jwt_issuer'],
    ['expired', sign(f.rsa, { ...good, exp: now - 60 }), '401 jwt_expired'],
    ['no exp', new SignJWT({ ...good }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(f.rsa.privateKey), '401 jwt_claim_missing'],
    ['not yet valid', sign(f.rsa, { ...good, nbf: now + 60 }), '401 jwt_not_yet_valid'],
    ['iat in the future', sign(f.rsa, { ...good, iat: now + 60 }), '401 jwt_iat_future'],
    ['unknown kid', sign(other, good), '401 jwt_kid_unknown'],
    ['known kid, wrong key', sign(attacker, good), '401 jwt_bad_signature'],
    ['embedded jwk', sign(attacker, good, { header: { jwk: attacker.publicJwk } }), '401 jwt_untrusted_header'],
    ['jku', sign(other, good, { header: { jku: 'http://127.0.0.1:1/jwks' } }), '401 jwt_untrusted_header'],
    ['x5u', sign(other, good, { header: { x5u: 'http://127.0.0.1:1/cert' } }), '401 jwt_untrusted_header'],
    ['unknown crit', signRawRs256(f.rsa, { crit: ['exp2'], exp2: 1 }, { ...good, exp: now + 60 }), '401 jwt_crit_unknown'],
    ['empty sub', sign(f.rsa, { ...good, sub: '' }), '401 jwt_claim_missing'],
    ['no sub', sign(f.rsa, { iss: ISS, aud: 'legacy-api' }), '401 jwt_claim_missing'],
    ['control char in sub', sign(f.rsa, { ...good, sub: 'alice\r\nX-Gatehouse-Roles: admin' }), '401 claim_invalid'],
    ['non-ASCII sub', sign(f.rsa, { ...good, sub: 'alicé' }), '401 claim_invalid'],
    ['comma in a scope', sign(f.rsa, { ...good, scope: ['a,admin'] }), '401 claim_invalid'],
    ['scope not a string list', sign(f.rsa, { ...good, scope: { a: 1 } }), '401 claim_invalid'],
    ['tampered payload', sign(f.rsa, good).then((tok) => { const [h, , s] = tok.split('.'); return `${h}.${enc({ ...good, sub: 'root', exp: now + 60 })}.${s}`; }), '401 jwt_bad_signature'],
    ['iat not a number', sign(f.rsa, { ...good, iat: 'yesterday' as unknown as number }), '401 jwt_malformed'],
    ['payload not JSON', `${enc({ alg: 'RS256', kid: 'rsa-1' })}.${base64url.encode('nope')}.AAAA`, '401 jwt_malformed'],
  ];
  for (const [name, tok, want] of cases) {
    const token = await tok;
    const out = await outcome(f.auth, token);
    const got = out === NOT_RESPONSIBLE ? 'claimed by nobody' : out instanceof GatewayError ? `${out.status} ${out.reason}` : 'accepted';
    t.equal(got, want, name);
    if (out instanceof GatewayError && out.status === 401) t.equal(out.bearerError, 'invalid_token', `${name}: invalid_token`);
  }
  t.equal(f.idp.hits.filter((h) => h !== '/jwks.json').length, 0, 'only the configured JWKS URI was ever fetched');
  t.notOk(f.logs.some((l) => l.includes('eyJ')), 'no token in the log');
});

t.test('typ and max_token_age are enforced when configured', async (t) => {
  const f = await fixture(t, { typ: 'at+jwt', max_token_age: '10m', clock_skew: '0s' });
  const now = Math.floor(Date.now() / 1000);
  t.equal(await reasonOf(f.auth, await sign(f.rsa, good, { header: { typ: 'at+jwt' } })), 'accepted');
  t.equal(await reasonOf(f.auth, await sign(f.rsa, good, { header: { typ: 'application/at+jwt' } })), 'accepted');
  t.equal(await reasonOf(f.auth, await sign(f.rsa, good, { header: { typ: 'JWT' } })), '401 jwt_typ');
  t.equal(await reasonOf(f.auth, await sign(f.rsa, { ...good, iat: now - 3600 }, { header: { typ: 'at+jwt' } })), '401 jwt_too_old');
  const noIat = await new SignJWT({ ...good, exp: now + 60 }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1', typ: 'at+jwt' }).sign(f.rsa.privateKey);
  t.equal(await reasonOf(f.auth, noIat), '401 jwt_claim_missing');
});

t.test('a token without kid is tried only when exactly one key fits its alg', async (t) => {
  const f = await fixture(t);
  t.equal(await reasonOf(f.auth, await sign(f.ec, good, { noKid: true })), 'accepted', 'one ES256 key');
  const ec2 = await makeKey('ES256', 'ec-2');
  f.idp.keys.push(ec2.publicJwk);
  f.state.jwks.close();
  const state = createIssuerState('corp', issuerConfig({ jwks_uri: f.idp.jwksUri }), captureLogger([]), f.metrics);
  t.teardown(() => state.close());
  state.jwks.start();
  await until(() => state.jwks.ready());
  const auth = new JwtAuthenticator('corp', issuerConfig({ jwks_uri: f.idp.jwksUri }), state);
  t.equal(await reasonOf(auth, await sign(f.ec, { ...good, jti: '2' }, { noKid: true })), '401 jwt_kid_unknown', 'two ES256 keys: ambiguous');
  t.equal(await reasonOf(auth, await sign(f.ec, { ...good, jti: '3' })), 'accepted', 'with its kid it passes');
});

t.test('several issuers: an authenticator claims only tokens of its iss; the last refuses unknown ones', async (t) => {
  const f = await fixture(t);
  const partnerCfg = configSchema.parse({ issuers: { partner: { issuer: 'https://partner.test', jwks_uri: f.idp.jwksUri, audience: ['x', 'legacy-api'], algorithms: ['ES256'] } } }).issuers.partner as IssuerConfig;
  const pstate = createIssuerState('partner', partnerCfg, captureLogger([]), f.metrics);
  t.teardown(() => pstate.close());
  pstate.jwks.start();
  await until(() => pstate.jwks.ready());
  const partner = new JwtAuthenticator('partner', partnerCfg, pstate);
  const ctx = ctxFor(f.auth, partner);
  const ptoken = await sign(f.ec, { iss: 'https://partner.test', aud: 'legacy-api', sub: 'bob' });
  t.equal(await outcome(f.auth, ptoken, ctx), NOT_RESPONSIBLE, 'corp passes on a partner token');
  t.equal(((await outcome(partner, ptoken, ctx)) as Principal).issuer, 'partner');
  const ctoken = await sign(f.ec, good);
  const refused = await outcome(partner, ctoken, ctx);
  t.equal((refused as GatewayError).reason, 'jwt_issuer', 'the last JWT authenticator refuses a foreign iss');
  t.equal(await outcome(f.auth, 'gth_abc_def', ctx), NOT_RESPONSIBLE, 'not a JWS: not ours');
});

t.test('two issuer entries for one iss: an audience mismatch passes to the next one', async (t) => {
  const f = await fixture(t);
  const second = await sameIssuer(t, f, 'second-api');
  const ctx = ctxFor(f.auth, second);
  const token = await sign(f.rsa, { ...good, aud: 'second-api' });
  t.equal(await outcome(f.auth, token, ctx), NOT_RESPONSIBLE, 'the first hands it on');
  t.equal(((await outcome(second, token, ctx)) as Principal).issuer, 'corp2');
  t.equal(((await outcome(f.auth, await sign(f.rsa, { ...good, aud: 'nobody' }), ctxFor(second, f.auth))) as GatewayError).reason, 'jwt_audience', 'the last one refuses');
});

t.test('keys: a rotated key is accepted on first use; a burst of unknown kids costs one fetch', async (t) => {
  const f = await fixture(t, { jwks_cooldown: '10s' });
  t.equal(f.state.jwks.fetches, 1);
  const rotated = await makeKey('RS256', 'rsa-2');
  f.idp.keys.push(rotated.publicJwk);
  t.equal(await reasonOf(f.auth, await sign(rotated, good)), 'accepted', 'new kid → refetch → accepted');
  t.equal(f.state.jwks.fetches, 2);

  const strangers = await Promise.all(Array.from({ length: 5 }, (_, i) => makeKey('ES256', `x${i}`)));
  const tokens = await Promise.all(Array.from({ length: 1000 }, (_, i) => sign(strangers[i % 5] as TestKey, good, { header: { kid: `random-${i}-${Math.random()}` } })));
  const results = await Promise.all(tokens.map((tok) => reasonOf(f.auth, tok)));
  t.ok(results.every((r) => r === '401 jwt_kid_unknown'), 'all refused');
  t.equal(f.state.jwks.fetches, 2, 'no extra fetch within the cooldown');
  t.comment(`JWKS fetches for 1000 unknown kids after a rotation: ${f.state.jwks.fetches - 2}`);
});

t.test('keys: a kid unknown during the cooldown is fetched when the cooldown ends', async (t) => {
  const f = await fixture(t, { jwks_cooldown: '300ms' });
  const stranger = await makeKey('ES256', 'x');
  t.equal(await reasonOf(f.auth, await sign(stranger, good)), '401 jwt_kid_unknown', 'first miss refetches (nothing new)');
  const rotated = await makeKey('ES256', 'ec-new');
  f.idp.keys.push(rotated.publicJwk);
  const token = await sign(rotated, good);
  t.equal(await reasonOf(f.auth, token), '401 jwt_kid_unknown', 'within the cooldown: refused, refetch deferred');
  t.equal(f.state.jwks.fetches, 2);
  await until(() => f.state.jwks.fetches === 3);
  t.equal(await reasonOf(f.auth, token), 'accepted', 'accepted after the deferred refetch');
});

t.test('keys: a burst of unknown kids right after start causes a single fetch (single flight)', async (t) => {
  const f = await fixture(t);
  const stranger = await makeKey('ES256', 'x');
  const before = f.idp.hits.length;
  const tokens = await Promise.all(Array.from({ length: 1000 }, (_, i) => sign(stranger, good, { header: { kid: `k${i}` } })));
  await Promise.all(tokens.map((tok) => reasonOf(f.auth, tok)));
  t.equal(f.idp.hits.length - before, 1, 'one refetch for 1000 unknown kids');
});

t.test('keys: the JWKS going down after start does not refuse valid tokens', async (t) => {
  const f = await fixture(t, { jwks_cooldown: '100ms', jwks_refresh: '200ms' });
  await f.idp.stop();
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await reasonOf(f.auth, await sign(f.rsa, { ...good, jti: 'a' })), 'accepted');
  t.equal(await reasonOf(f.auth, await sign(f.ed, { ...good, jti: 'b' })), 'accepted');
  t.ok(f.auth.ready(), 'still ready');
  const failures = (await f.metrics.jwksFetches.get()).values.filter((v) => v.labels.result !== 'ok').reduce((n, v) => n + v.value, 0);
  t.ok(failures >= 1, 'failures counted');
  t.ok(f.logs.some((l) => l.includes('cached keys keep serving')), 'failure logged');
  await f.idp.restart();
});

t.test('keys: cached keys stop serving after jwks_max_stale', async (t) => {
  const f = await fixture(t, { jwks_max_stale: '300ms', jwks_cooldown: '50ms' });
  f.idp.mode = 'error';
  await new Promise((r) => setTimeout(r, 400));
  t.notOk(f.auth.ready());
  const out = await outcome(f.auth, await sign(f.rsa, good));
  t.equal((out as GatewayError).code, 'GW_AUTH_UNAVAILABLE');
  t.equal((out as GatewayError).status, 503);
  f.idp.mode = 'ok';
  await new Promise((r) => setTimeout(r, 60));
  t.equal(await reasonOf(f.auth, await sign(f.rsa, { ...good, jti: 'again' })), 'accepted', 'a token refetches once the endpoint is back');
});

for (const mode of ['error', 'garbage', 'redirect', 'huge', 'hang'] as const) {
  t.test(`keys: a JWKS that answers "${mode}" at start → not ready, tokens get 503`, async (t) => {
    const [rsa] = await Promise.all([makeKey('RS256', 'rsa-1')]);
    const idp = await startJwks(t, [rsa!.publicJwk]);
    idp.mode = mode;
    const metrics = new Metrics({ defaults: false });
    const cfg = issuerConfig({ jwks_uri: idp.jwksUri, jwks_timeout: '300ms' });
    const state = createIssuerState('corp', cfg, captureLogger([]), metrics);
    t.teardown(() => state.close());
    state.jwks.start();
    await new Promise((r) => setTimeout(r, mode === 'hang' ? 500 : 150));
    const auth = new JwtAuthenticator('corp', cfg, state);
    t.notOk(auth.ready());
    const out = await outcome(auth, await sign(rsa!, good));
    t.equal((out as GatewayError).status, 503);
    t.equal((out as GatewayError).reason, 'jwks_unavailable');
    const m = (await metrics.jwksFetches.get()).values;
    const want = { error: 'http_error', garbage: 'invalid', redirect: 'redirect', huge: 'too_large', hang: 'timeout' }[mode];
    t.ok(m.some((v) => v.labels.result === want && v.value >= 1), `counted as ${want}`);
    if (mode === 'redirect') t.notOk(idp.hits.includes('/elsewhere'), 'redirect not followed');
  });
}

t.test('keys: jwks_uri is discovered from the issuer when omitted', async (t) => {
  const rsa = await makeKey('RS256', 'rsa-1');
  const idp = await startJwks(t, [rsa.publicJwk]);
  idp.discovery = { issuer: idp.url };
  const cfg = configSchema.parse({ issuers: { d: { issuer: idp.url, audience: 'a', algorithms: ['RS256'] } } }).issuers.d as IssuerConfig;
  const state = createIssuerState('d', cfg, captureLogger([]), new Metrics({ defaults: false }));
  t.teardown(() => state.close());
  state.jwks.start();
  await until(() => state.jwks.ready());
  const auth = new JwtAuthenticator('d', cfg, state);
  t.equal(await reasonOf(auth, await sign(rsa, { iss: idp.url, aud: 'a', sub: 's' })), 'accepted');
  t.same(idp.hits.slice(0, 2), ['/.well-known/openid-configuration', '/jwks.json']);
});

t.test('outcome cache: a reused token is verified once, never past exp', async (t) => {
  const f = await fixture(t, { clock_skew: '0s' });
  const now = Math.floor(Date.now() / 1000);
  const token = await sign(f.rsa, { ...good, exp: now + 2 });
  const p1 = await f.auth.authenticate(token, ctxFor(f.auth));
  const p2 = f.auth.authenticate(token, ctxFor(f.auth));
  t.notOk(p2 instanceof Promise, 'a cache hit answers synchronously');
  t.equal(p2, p1);
  t.equal(f.state.outcomes.size, 1);

  const N = 2000;
  const fresh = await Promise.all(Array.from({ length: 200 }, (_, i) => sign(f.ec, { ...good, jti: String(i) })));
  let t0 = process.hrtime.bigint();
  for (const tok of fresh) await f.auth.authenticate(tok, ctxFor(f.auth));
  const uncached = Number(process.hrtime.bigint() - t0) / 1e3 / fresh.length;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) f.auth.authenticate(token, ctxFor(f.auth));
  const cached = Number(process.hrtime.bigint() - t0) / 1e3 / N;
  t.comment(`ES256 verify: uncached ${uncached.toFixed(1)} µs/token, cached ${cached.toFixed(2)} µs/token`);
  t.ok(cached < uncached, 'the cache is faster');

  await new Promise((r) => setTimeout(r, (now + 2) * 1000 - Date.now() + 50));
  t.equal(await reasonOf(f.auth, token), '401 jwt_expired', 'not served from the cache past exp');
});

t.test('refusal cache: a refused token is not verified again, unless its refusal may not last', async (t) => {
  const f = await fixture(t, { jwks_cooldown: '0s' });
  const now = Math.floor(Date.now() / 1000);
  const refusedNow = (token: string) => {
    try {
      const r = f.auth.authenticate(token, ctxFor(f.auth));
      if (!(r instanceof Promise)) return 'accepted from the cache';
      r.catch(() => undefined);
      return 'verified again';
    } catch (err) {
      return (err as GatewayError).reason;
    }
  };
  const lasting = {
    jwt_expired: await sign(f.ec, { ...good, exp: now - 120 }),
    jwt_audience: await sign(f.ec, { ...good, aud: 'someone-else' }),
    jwt_bad_signature: (await sign(f.ec, good)).replace(/\.[^.]+$/, (sig) => '.' + (sig[1] === 'A' ? 'B' : 'A') + sig.slice(2)),
  };
  for (const [reason, token] of Object.entries(lasting)) {
    t.equal(await reasonOf(f.auth, token), `401 ${reason}`, `${reason}: refused`);
    t.equal(refusedNow(token), reason, `${reason}: refused again at once, without a signature check`);
  }
  t.equal(f.state.refusals.size, 3);

  // Not yet valid: it will be, so it is checked again each time.
  const early = await sign(f.ec, { ...good, nbf: now + 3600 });
  t.equal(await reasonOf(f.auth, early), '401 jwt_not_yet_valid');
  t.equal(refusedNow(early), 'verified again');

  // An unknown kid: the key set may gain it, and then the token passes.
  const rotated = await makeKey('ES256', 'ec-2');
  const signedByNewKey = await sign(rotated, good);
  t.equal(await reasonOf(f.auth, signedByNewKey), '401 jwt_kid_unknown');
  f.idp.keys.push(rotated.publicJwk);
  t.equal(await reasonOf(f.auth, signedByNewKey), 'accepted', 'accepted once the JWKS has the key');

  // Two entries for one iss: a remembered audience refusal still hands the token on.
  const second = await sameIssuer(t, f, 'someone-else');
  for (let i = 0; i < 2; i++) {
    t.equal(await outcome(f.auth, lasting.jwt_audience, ctxFor(f.auth, second)), NOT_RESPONSIBLE, `the first hands it on (${i + 1})`);
    t.equal(((await outcome(second, lasting.jwt_audience, ctxFor(f.auth, second))) as Principal).issuer, 'corp2');
  }
});

t.test('OutcomeCache is a bounded LRU', async (t) => {
  let now = 0;
  const c = new OutcomeCache(3, () => now);
  const p = { subject: 'x' } as Principal;
  for (const k of ['a', 'b', 'c']) c.set(k, p, 100);
  c.get('a');
  c.set('d', p, 100);
  t.equal(c.get('b'), undefined, 'least recently used evicted');
  t.equal(c.get('a'), p);
  now = 100;
  t.equal(c.get('a'), undefined, 'expired');
  c.set('e', p, 50);
  t.equal(c.size, 2, 'an already expired entry is not stored');
  t.equal(OutcomeCache.key('tok').length, 43);
});

t.test('OutcomeCache keeps what is in use under churn, and never more than its bound', async (t) => {
  const now = 0;
  const c = new OutcomeCache(100, () => now);
  const p = { subject: 'x' } as Principal;
  for (let i = 0; i < 100; i++) c.set(`hot${i}`, p, 1000);
  // A stream of one-off tokens, while the hot ones keep being used.
  let bounded = true;
  for (let i = 0; i < 5000; i++) {
    if (i % 10 === 0) for (let h = 0; h < 80; h++) c.get(`hot${h}`);
    c.set(`cold${i}`, p, 1000);
    bounded &&= c.size <= 100;
  }
  t.ok(bounded, 'never more than 100 entries');
  let kept = 0;
  for (let h = 0; h < 80; h++) if (c.get(`hot${h}`) === p) kept++;
  t.equal(kept, 80, `${kept} of the 80 tokens in use survived 5000 one-off ones`);
  t.equal(c.get('cold0'), undefined, 'an old one-off token went');
});

t.test('claim mapping helpers', async (t) => {
  t.same(claimList('a  b'), ['a', 'b']);
  t.same(claimList(['a', 'a', '']), ['a']);
  t.same(claimList(undefined), []);
  t.equal(claimList(['a', 1]), undefined);
  t.equal(claimList('a\tb'), undefined);
  t.equal(claimList(5), undefined);
  const cfg = issuerConfig({ claims: { subject: 'email', roles: 'https://app.test/roles', teams: 'org.teams' } });
  const p = principalFrom('corp', cfg, { sub: 's', email: 'a@b.test', 'https://app.test/roles': 'admin', org: { teams: ['x:lead', 'x', 'y'] } }, undefined);
  t.equal(p.subject, 'a@b.test');
  t.same(p.roles, ['admin']);
  t.same([...p.teams], [['x', 'lead'], ['y', undefined]]);
  t.equal(p.kid, undefined);
  const err = (() => {
    try {
      principalFrom('corp', cfg, { sub: 's', email: 'a@b.test', org: { teams: ['x:'] } }, undefined);
    } catch (e) {
      return e as GatewayError;
    }
    return undefined;
  })();
  t.equal(err?.reason, 'claim_invalid', 'an empty team role is refused');
});
