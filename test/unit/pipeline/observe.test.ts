import { Writable } from 'node:stream';
import t from 'tap';
import { recordOf } from '../../../src/audit/record.js';
import { createLogger, LINE_BATCH_MS, LineBatch } from '../../../src/log.js';
import type { RequestContext } from '../../../src/pipeline/context.js';
import { requestLogger } from '../../../src/pipeline/observe.js';
import { captureLogger } from '../../helpers/gateway.js';

function fakeCtx(extra: Partial<RequestContext> = {}): RequestContext {
  return {
    id: 'req-1',
    time: Date.parse('2026-11-23T10:00:00.000Z'),
    req: { headers: { 'user-agent': 'curl/8', authorization: 'Bearer gth_secret_value' }, url: '/bench/hello?access_token=qs_secret' },
    method: 'GET',
    path: '/bench/hello',
    route: { name: 'bench' },
    status: 200,
    decision: 'allow',
    reason: 'granted',
    principal: { kind: 'service_account', subject: 'ci-bot', keyId: 'k1' },
    upstream: 'billing',
    clientIp: '127.0.0.1',
    error: undefined,
    record: undefined,
    durationMs: 1.2345,
    ...extra,
  } as unknown as RequestContext;
}

t.test('the request line is the audit record behind level, service and msg', async (t) => {
  const lines: string[] = [];
  const log = captureLogger(lines);
  const batch = new LineBatch(log);
  const ctx = fakeCtx();
  requestLogger(log, batch)(ctx);
  t.equal(lines.length, 0, 'queued, not yet written');
  batch.flush();
  t.equal(lines.length, 1);
  const line = JSON.parse(lines[0] as string) as Record<string, unknown>;
  t.match(line, { level: 'info', service: 'gatehouse', msg: 'request', request_id: 'req-1', route: 'bench', status: 200, decision: 'allow', reason: 'granted', principal: { kind: 'service_account', subject: 'ci-bot' }, key_id: 'k1', path: '/bench/hello', duration_ms: 1.235, user_agent: 'curl/8' });
  const { level: _l, service: _s, msg: _m, ...rest } = line;
  t.same(rest, JSON.parse(recordOf(ctx)), 'the same fields as the audit record');
  t.notMatch(lines[0], /secret/, 'neither the Authorization value nor the query string');
});

t.test('lines are written in batches: one write per burst, at most one per LINE_BATCH_MS', async (t) => {
  const writes: string[] = [];
  const log = createLogger({ level: 'info', destination: new Writable({ write: (chunk: Buffer, _e, cb) => (writes.push(chunk.toString()), cb()) }) });
  const observe = requestLogger(log, new LineBatch(log));
  const ids = (from: number) => Array.from({ length: 20 }, (_, i) => `req-${from + i}`);
  const burst = (from: number) => ids(from).forEach((id) => observe(fakeCtx({ id })));
  burst(0);
  t.equal(writes.length, 0, 'nothing written synchronously');
  await new Promise((r) => setImmediate(r));
  t.equal(writes.length, 1, 'after a quiet spell, the burst is written in the same turn, in one write');
  burst(20);
  await new Promise((r) => setImmediate(r));
  t.equal(writes.length, 1, 'a second burst right after waits for the batch delay');
  const started = performance.now();
  while (writes.length < 2 && performance.now() - started < 2000) await new Promise((r) => setTimeout(r, 5));
  t.equal(writes.length, 2, 'and is then written in one write');
  t.ok(performance.now() - started <= LINE_BATCH_MS + 50, 'within the batch delay');
  const lines = writes.join('').trimEnd().split('\n');
  t.same(lines.map((l) => (JSON.parse(l) as { request_id: string }).request_id), [...ids(0), ...ids(20)], 'every line, in order');
});

t.test('requestLogger() keeps redaction on failure lines', async (t) => {
  const lines: string[] = [];
  const err = Object.assign(new Error('upstream failed'), { token: 'gth_secret_value' });
  requestLogger(captureLogger(lines))(fakeCtx({ status: 502, decision: 'error', error: err }));
  t.equal(lines.length, 1, 'written at once');
  t.match(lines[0], /"level":"warn"/);
  t.match(lines[0], /"msg":"request failed"/);
  t.notMatch(lines[0], /gth_secret_value/);
  t.match(lines[0], /\[redacted\]/);
});

t.test('requestLogger() follows the level of its logger', async (t) => {
  const lines: string[] = [];
  const log = captureLogger(lines);
  const batch = new LineBatch(log);
  const observe = requestLogger(log, batch);
  log.level = 'warn';
  observe(fakeCtx());
  batch.flush();
  t.equal(lines.length, 0, 'no info line at level warn');
  log.level = 'info';
  observe(fakeCtx());
  batch.flush();
  t.equal(lines.length, 1);
});
