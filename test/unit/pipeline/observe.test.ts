import t from 'tap';
import type { RequestContext } from '../../../src/pipeline/context.js';
import { requestLogger } from '../../../src/pipeline/observe.js';
import { captureLogger } from '../../helpers/gateway.js';

function fakeCtx(extra: Partial<RequestContext> = {}): RequestContext {
  return {
    id: 'req-1',
    method: 'GET',
    path: '/bench/hello',
    route: { name: 'bench' },
    status: 200,
    decision: 'allow',
    reason: 'granted',
    principal: { kind: 'service_account', subject: 'ci-bot' },
    upstream: 'billing',
    clientIp: '127.0.0.1',
    error: undefined,
    elapsedMs: () => 1.2345,
    ...extra,
  } as unknown as RequestContext;
}

const withoutTime = (line: string) => {
  const { time: _time, ...rest } = JSON.parse(line) as Record<string, unknown>;
  return rest;
};

t.test('requestLogger() writes the same line as the redacting logger', async (t) => {
  const lines: string[] = [];
  const log = captureLogger(lines);
  requestLogger(log)(fakeCtx());
  log.info(
    { request_id: 'req-1', method: 'GET', path: '/bench/hello', route: 'bench', status: 200, decision: 'allow', reason: 'granted', principal: 'service_account:ci-bot', upstream: 'billing', duration_ms: 1.235, client_ip: '127.0.0.1' },
    'request',
  );
  t.equal(lines.length, 2);
  t.same(withoutTime(lines[0] as string), withoutTime(lines[1] as string));
  t.equal(Object.keys(JSON.parse(lines[0] as string)).join(','), Object.keys(JSON.parse(lines[1] as string)).join(','), 'same keys in the same order');
});

t.test('requestLogger() keeps redaction on failure lines', async (t) => {
  const lines: string[] = [];
  const err = Object.assign(new Error('upstream failed'), { token: 'gth_secret_value' });
  requestLogger(captureLogger(lines))(fakeCtx({ status: 502, decision: 'error', error: err }));
  t.equal(lines.length, 1);
  t.match(lines[0], /"level":40/);
  t.notMatch(lines[0], /gth_secret_value/);
  t.match(lines[0], /\[redacted\]/);
});

t.test('requestLogger() follows the level of its logger', async (t) => {
  const lines: string[] = [];
  const log = captureLogger(lines);
  const observe = requestLogger(log);
  log.level = 'warn';
  observe(fakeCtx());
  t.equal(lines.length, 0, 'no info line at level warn');
  log.level = 'info';
  observe(fakeCtx());
  t.equal(lines.length, 1);
});
