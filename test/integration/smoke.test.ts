import t from 'tap';
import { startGateway } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('a public route proxies to the upstream and a protected one refuses without a token', async (t) => {
  const up = await startUpstream(t);
  const { url } = await startGateway(
    t,
    `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
roles: { viewer: {} }
upstreams: { app: { url: ${up.url} } }
routes:
  - { name: open, match: { path: /open/** }, upstream: app, public: true }
  - { name: closed, match: { path: /closed/** }, upstream: app, allow: [{ roles: [viewer] }] }
`,
  );
  const open = await fetch(`${url}/open/a?b=1`);
  t.equal(open.status, 200);
  t.equal(up.requests[0]?.url, '/open/a?b=1');
  const closed = await fetch(`${url}/closed/a`);
  t.equal(closed.status, 401);
  t.equal(closed.headers.get('content-type'), 'application/problem+json');
  t.equal(up.requests.length, 1, 'the refused request never reached the upstream');
});
