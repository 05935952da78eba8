import t from 'tap';
import type { Principal } from '../../../src/authn/authenticator.js';
import { cut, isoTime, jsonMillis, jsonString, recordOf, requestRecord } from '../../../src/audit/record.js';
import type { RequestContext } from '../../../src/pipeline/context.js';

const cutOrNull = (v: string | undefined) => (v === undefined ? null : cut(v));

/** The record as JSON.stringify() writes the record object (the reference the serializer must match byte for byte). */
function reference(ctx: RequestContext): string {
  const p = ctx.principal;
  const ua = ctx.req.headers['user-agent'];
  const q = (ctx.req.url ?? '').indexOf('?');
  const principal = p === undefined ? null : { kind: p.kind, subject: cut(p.subject) };
  const jwt = p?.kind === 'jwt' ? { issuer: cutOrNull(p.issuer), kid: cutOrNull(p.kid) } : {};
  return JSON.stringify({
    time: isoTime(ctx.time), request_id: ctx.id, event: 'request', principal,
    key_id: cutOrNull(p === undefined ? ctx.keyId : p.keyId), ...jwt,
    route: ctx.route?.name ?? null, method: cut(ctx.method),
    path: cut(ctx.path || (q === -1 ? (ctx.req.url ?? '') : (ctx.req.url ?? '').slice(0, q))),
    status: ctx.status, decision: ctx.decision ?? 'error', reason: cutOrNull(ctx.reason), upstream: ctx.upstream ?? null,
    duration_ms: Math.round(ctx.durationMs * 1000) / 1000, client_ip: ctx.clientIp, user_agent: typeof ua === 'string' ? cut(ua) : null,
  });
}

const NASTY = ['', 'plain', 'quote " and \\ backslash', 'tab\tnewline\ncontrol\u0001\u001f', 'ü € 𝄞 emoji 🙂', 'lone \ud800 high', 'lone \udfff low', '\u2028\u2029', 'x'.repeat(1500), '</script>'];

function ctxOf(i: number): RequestContext {
  const s = (k: number) => NASTY[(i + k) % NASTY.length] as string;
  const kinds = ['service_account', 'jwt', undefined] as const;
  const kind = kinds[i % 3];
  const principal = kind === undefined ? undefined : ({ kind, subject: s(1), keyId: i % 4 ? s(2) : undefined, issuer: s(3), kid: i % 5 ? s(4) : undefined, roles: [], teams: new Map(), scopes: [] } as unknown as Principal);
  return {
    // Only the ids a RequestContext keeps: its own UUIDv7 or a client's of [A-Za-z0-9._-]{1,128} (headers.test.ts).
    id: i % 2 ? (['abc-DEF_1.2', 'x'.repeat(128), '.'] as const)[i % 3] : `0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b`,
    time: 1_790_000_000_000 + i,
    principal,
    keyId: i % 6 ? s(6) : undefined,
    route: i % 7 ? { name: s(7) } : undefined,
    method: i % 8 ? 'GET' : s(8),
    path: i % 9 ? s(9) : '',
    req: { url: `/raw/${s(10)}?q=${s(11)}`, headers: i % 10 ? { 'user-agent': s(12) } : {} },
    status: [200, 401, 499, 502][i % 4],
    decision: i % 11 ? (['allow', 'deny', 'error'] as const)[i % 3] : undefined,
    reason: i % 12 ? s(13) : undefined,
    upstream: i % 13 ? s(14) : undefined,
    durationMs: [0, 1.23456, 1234.5678, 1e-7, 3][i % 5],
    // The TCP peer, or (behind a trusted proxy) whatever X-Forwarded-For said.
    peerIp: i % 15 ? '203.0.113.7' : '::1',
    clientIp: i % 14 ? (i % 15 ? '203.0.113.7' : '::1') : s(15),
    record: undefined,
  } as unknown as RequestContext;
}

t.test('the record text is exactly JSON.stringify() of the record object, whatever the field values', async (t) => {
  for (let i = 0; i < 600; i++) {
    const ctx = ctxOf(i);
    const text = requestRecord(ctx);
    // Twice: the second time the fields that repeat come from what the first one kept (LastJson).
    const again = requestRecord(ctx);
    if (text !== reference(ctx) || again !== text) {
      t.equal(text, reference(ctx), `context ${i}`);
      t.equal(again, text, `context ${i}, again`);
      return;
    }
    JSON.parse(text);
  }
  t.pass('600 contexts, each twice: byte for byte the same');
});

t.test('a record right after one that differs in a single field carries its own value of it', async (t) => {
  const base = { ...ctxOf(1), route: { name: 'r1' }, method: 'GET', status: 200, decision: 'allow', reason: 'granted', upstream: 'up1' } as unknown as RequestContext;
  const changes: Record<string, unknown>[] = [
    { route: { name: 'r2' } },
    { route: undefined },
    { method: 'POST' },
    { status: 502 },
    { decision: 'error' },
    { reason: 'upstream_reset' },
    { reason: undefined },
    { upstream: 'up2' },
    { upstream: undefined },
  ];
  for (const change of changes) {
    const other = { ...base, ...change, record: undefined } as RequestContext;
    t.equal(requestRecord(base), reference(base));
    t.equal(requestRecord(other), reference(other), JSON.stringify(change));
    t.equal(requestRecord(base), reference(base), `back from ${JSON.stringify(change)}`);
  }
});

t.test('a reused principal keeps its fields; another principal gets its own', async (t) => {
  const a = ctxOf(1);
  const b = { ...ctxOf(4), principal: a.principal } as RequestContext;
  t.equal(requestRecord(b), reference(b));
  const c = { ...b, principal: { ...(a.principal as Principal), subject: 'other' } } as RequestContext;
  t.match(JSON.parse(requestRecord(c)), { principal: { subject: 'other' } });
  t.equal(recordOf(a), recordOf(a), 'recordOf() serializes once');
});

t.test('jsonString() is JSON.stringify() for strings', async (t) => {
  for (const s of NASTY) t.equal(jsonString(s), JSON.stringify(s));
});

t.test('jsonMillis() writes milliseconds rounded to microseconds as JSON.stringify() writes the number', async (t) => {
  const values = [0, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.5, 1, 1.2, 1.05, 1.005, 3.2144, 3.2145, 12, 999.9995, 1234.5678, 86_400_000.123, 1e-9, 1e15 + 0.5];
  for (let i = 0; i < 2000; i++) values.push(Math.random() * 10 ** ((i % 7) - 1));
  for (const v of values) t.equal(jsonMillis(v), JSON.stringify(Math.round(v * 1000) / 1000), String(v));
  t.equal(jsonMillis(NaN), 'null');
});

t.test('isoTime() is toISOString() across seconds, years and going back', async (t) => {
  const base = Date.UTC(2026, 10, 24, 23, 59, 59, 998);
  for (const ms of [base, base + 0.5, base + 1, base + 2, base + 1001, base - 86_400_000, base, 0, 999, 1000, 951782400000, 253402300799999, 253402300800000, -1]) {
    t.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  }
});
