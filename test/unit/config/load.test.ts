import t from 'tap';
import { ConfigError, keysAt, parseConfig } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';
import { parseDuration, parseListen, parseSize } from '../../../src/util/units.js';

function issues(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(yaml, 'gw.yaml', env);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`);
  }
}

t.test('parseConfig() applies defaults and converts durations and sizes', async (t) => {
  const { config } = parseConfig('server: { listen: 127.0.0.1:8080, limits: { max_body: 2mb, headers_timeout: 1500ms } }\n', 'gw.yaml', {});
  t.same(config.server.listen, { host: '127.0.0.1', port: 8080 });
  t.equal(config.server.limits.max_body, 2 * 1024 * 1024);
  t.equal(config.server.limits.headers_timeout, 1500);
  t.equal(config.server.limits.request_timeout, 60_000);
  t.equal(config.server.limits.max_header_size, 16 * 1024);
  t.equal(config.server.limits.keepalive_timeout, 5000);
  t.same(config.routes, []);
  const empty = parseConfig('', 'gw.yaml', {});
  t.same(empty.config.upstreams, {});
});

t.test('parseConfig() reports unknown keys on the key, with what is expected', async (t) => {
  const out = issues('server:\n  listen: 127.0.0.1:1\n  lisen: 1\nroutes: []\nextra: 1\n');
  t.equal(out.length, 2);
  t.equal(out[0], '3:3 server.lisen: unknown key "lisen" (expected one of: listen, tls, admin, trusted_proxies, workers, limits)');
  t.match(out[1], /^5:1 extra: unknown key "extra" \(expected one of: server, store, [^)]*routes/);
});

t.test('parseConfig() substitutes ${VAR} and names an unset one with its line', async (t) => {
  const { config } = parseConfig('upstreams:\n  a: { url: "http://${HOST}:${PORT}/x" }\n', 'gw.yaml', { HOST: '10.0.0.1', PORT: '81' });
  t.equal(config.upstreams.a?.url, 'http://10.0.0.1:81/x');
  t.match(issues('upstreams:\n  a: { url: "http://${NOPE}" }\n'), [/^2:\d+ : environment variable NOPE is not set/]);
});

t.test('parseConfig(): duplicate keys and syntax errors are YAML errors with a line', async (t) => {
  t.match(issues('server: {}\nserver: {}\n'), [/^2:1 : invalid YAML/]);
  t.match(issues('routes: [\n'), [/^\d+:\d+ : invalid YAML/]);
});

t.test('parseConfig(): bad values say what was expected', async (t) => {
  const out = issues(
    [
      'server:',
      '  listen: localhost',
      '  trusted_proxies: [10.0.0.0/33, nope]',
      '  limits: { max_body: lots, drain_timeout: 5 }',
      'upstreams:',
      '  a: { url: "ftp://x" }',
      'routes:',
      '  - { name: "bad name", match: { path: "/a/**/b" }, public: true, respond: {} }',
      '  - { name: r2, match: { path: "a" , methods: [get] }, public: true, respond: {} }',
      '  - { name: r3, match: { path: "/x*" }, public: true, respond: {}, strip_prefix: "/x/" }',
      '',
    ].join('\n'),
  );
  const text = out.join('\n');
  t.match(text, /2:\d+ server\.listen: expected an address "host:port"/);
  t.match(text, /3:\d+ server\.trusted_proxies\[0\]: expected an IP address or CIDR/);
  t.match(text, /3:\d+ server\.trusted_proxies\[1\]: expected an IP address or CIDR/);
  t.match(text, /4:\d+ server\.limits\.max_body: expected a size/);
  t.match(text, /4:\d+ server\.limits\.drain_timeout: expected a duration/);
  t.match(text, /6:\d+ upstreams\.a\.url: expected an absolute http/);
  t.match(text, /8:\d+ routes\[0\]\.name: expected a route name/);
  t.match(text, /8:\d+ routes\[0\]\.match\.path: expected "\*\*" only as the last segment/);
  t.match(text, /9:\d+ routes\[1\]\.match\.path: expected a path pattern starting with "\/"/);
  t.match(text, /9:\d+ routes\[1\]\.match\.methods\[0\]: expected an upper-case HTTP method/);
  t.match(text, /10:\d+ routes\[2\]\.match\.path: expected "\*" to stand for a whole segment/);
  t.match(text, /10:\d+ routes\[2\]\.strip_prefix: expected a path prefix/);
});

t.test('parseConfig(): cross-references', async (t) => {
  const text = issues(
    [
      'roles: { admin: { includes: [ghost] }, a: { includes: [b] }, b: { includes: [a] } }',
      'routes:',
      '  - { name: r, match: { path: /a }, upstream: nope, allow: [{ roles: [nobody] }], auth: [corp] }',
      '  - { name: s, match: { path: /b }, respond: {}, upstream: nope, public: true }',
      '  - { name: t, match: { path: /c }, public: true }',
      '  - { name: u, match: { path: /d }, public: true, respond: {}, strip_prefix: /d }',
      '',
    ].join('\n'),
  ).join('\n');
  t.match(text, /roles\.admin\.includes\[0\]: unknown role "ghost"/);
  t.match(text, /role hierarchy has a cycle/);
  t.match(text, /routes\[0\]\.upstream: unknown upstream "nope"/);
  t.match(text, /routes\[0\]\.allow\[0\]\.roles\[0\]: unknown role "nobody"/);
  t.match(text, /routes\[0\]\.auth\[0\]: unknown authenticator "corp"/);
  t.match(text, /routes\[1\]\.respond: route "s" has both upstream and respond/);
  t.match(text, /routes\[2\]: route "t" needs an upstream or a respond block/);
  t.match(text, /routes\[3\]\.strip_prefix: strip_prefix only applies to routes with an upstream/);
});

t.test('keysAt() finds the keys of a strict object through arrays, records and defaults', async (t) => {
  const has = (path: (string | number)[], keys: string[]) => t.ok(keys.every((k) => keysAt(configSchema, path)?.includes(k)), path.join('.'));
  has(['routes', 0], ['name', 'match', 'upstream']);
  has(['routes', 0, 'match'], ['host', 'path', 'methods']);
  has(['upstreams', 'x'], ['url', 'timeout']);
  has(['server', 'limits'], ['headers_timeout', 'max_body']);
  t.equal(keysAt(configSchema, ['routes', 0, 'name']), undefined);
});

t.test('units: durations, sizes, listen addresses', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('30s'), 30_000);
  t.equal(parseDuration('5m'), 300_000);
  t.equal(parseDuration('12h'), 43_200_000);
  t.equal(parseDuration('90d'), 90 * 86_400_000);
  t.equal(parseDuration('1.5s'), 1500);
  for (const bad of ['', '5', 's', '-1s', '5 parsecs', '1e3s', 'soon']) t.equal(parseDuration(bad), undefined, JSON.stringify(bad));
  t.equal(parseSize('64kb'), 65_536);
  t.equal(parseSize('10MB'), 10 * 1024 * 1024);
  t.equal(parseSize('100b'), 100);
  for (const bad of ['', '10', 'mb', '-1kb', '10 megabytes']) t.equal(parseSize(bad), undefined, JSON.stringify(bad));
  t.same(parseListen('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080 });
  t.same(parseListen(':9090'), { host: '0.0.0.0', port: 9090 });
  t.same(parseListen('[::1]:443'), { host: '::1', port: 443 });
  t.equal(parseListen('localhost'), undefined);
  t.equal(parseListen('1.2.3.4:70000'), undefined);
});

t.test('parseConfig() refuses workers it cannot honour instead of ignoring them', async (t) => {
  for (const value of ['auto', '4']) {
    const err = t.throws(() => parseConfig(`server:\n  workers: ${value}\n`, 'gw.yaml')) as unknown as ConfigError;
    t.equal(err.issues[0]?.line, 2, `workers: ${value} is reported at its line`);
    t.match(err.issues[0]?.message, /not implemented yet/);
  }
  t.equal(parseConfig('server:\n  workers: 1\n', 'gw.yaml').config.server.workers, 1);
});
