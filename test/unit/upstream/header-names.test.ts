import t from 'tap';
import { Pool } from 'undici';
import { ADDED_HEADERS } from '../../../src/pipeline/transform.js';
import { registerHeaderNames } from '../../../src/upstream/header-names.js';
import { startUpstream } from '../../helpers/upstream.js';

t.test("the names Gatehouse adds are registered with this undici, and undici's checks still hold for them", async (t) => {
  t.equal(registerHeaderNames(ADDED_HEADERS), true, "undici's table of known names is found");
  const up = await startUpstream(t);
  const pool = new Pool(up.url);
  t.teardown(() => pool.close());
  const res = await pool.request({ path: '/x', method: 'GET', headers: ['x-gatehouse-subject', 'svc-1', 'x-request-id', 'abc'] });
  await res.body.text();
  t.equal(res.statusCode, 200);
  t.equal(up.requests[0]?.headers['x-gatehouse-subject'], 'svc-1', 'a registered name is sent');
  t.equal(up.requests[0]?.headers['x-request-id'], 'abc');
  // Values are still checked: a registered name is no way to split a request.
  await t.rejects(pool.request({ path: '/y', method: 'GET', headers: ['x-gatehouse-subject', 'a\r\nx-injected: 1'] }), { code: 'UND_ERR_INVALID_ARG' });
  // And names that are not registered are still checked.
  await t.rejects(pool.request({ path: '/z', method: 'GET', headers: ['x-gatehouse subject', 'a'] }), { code: 'UND_ERR_INVALID_ARG' });
  t.equal(up.requests.length, 1, 'neither refused request reached the upstream');
});

t.test('only lower-case tokens can be registered', async (t) => {
  t.throws(() => registerHeaderNames(['X-Upper']), /not a lower-case header name/);
  t.throws(() => registerHeaderNames(['bad name']), /not a lower-case header name/);
  t.throws(() => registerHeaderNames(['']), /not a lower-case header name/);
});
