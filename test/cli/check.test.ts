import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runCli } from '../helpers/spawn.js';

const SHIPPED = fileURLToPath(new URL('../../gateway.yaml', import.meta.url));

t.test('gatehouse check exits 0 on the shipped gateway.yaml', async (t) => {
  const r = await runCli(t, ['check', '-c', SHIPPED]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /OK/);
});

t.test('gatehouse check prints every problem with file:line:col and key, exit 1', async (t) => {
  const dir = t.testdir({
    'gateway.yaml': [
      'server:', //                                         1
      '  listen: 127.0.0.1:0', //                            2
      '  limits: { max_body: 10 megabytes, headers_timeout: soon }', // 3
      'upstreams:', //                                       4
      '  app: { url: "http://127.0.0.1:1", timeout: 3x }', // 5
      'routes:', //                                          6
      '  - name: a', //                                      7
      '    match: { path: /a }', //                          8
      '    upstream: ghost', //                              9
      '    public: true', //                                 10
      '  - name: a', //                                      11
      '    match: { path: /b }', //                          12
      '    upstream: app', //                                13
      '  - name: c', //                                      14
      '    match: { path: /c }', //                          15
      '    upstream: app', //                                16
      '    publik: true', //                                 17
      '',
    ].join('\n'),
  });
  const file = join(dir, 'gateway.yaml');
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 1);
  const lines = r.stderr.split('\n');
  const has = (re: RegExp, what: string) => t.ok(lines.some((l) => re.test(l) && l.startsWith(file)), `${what}\n${r.stderr}`);
  has(/:3:\d+: server\.limits\.max_body: expected a size/, 'bad size with its line and key');
  has(/:3:\d+: server\.limits\.headers_timeout: expected a duration/, 'bad duration');
  has(/:5:\d+: upstreams\.app\.timeout: expected a duration[^\n]*"3x"/, 'bad upstream timeout names the value');
  has(/:17:5: routes\[2\]\.publik: unknown key "publik" \(expected one of: [^)]*public/, 'unknown key, on the key, with what is expected');
  t.match(r.stderr, /errors?$/m);
});

t.test('cross-reference problems: unknown upstream, duplicate names, no allow/public', async (t) => {
  const dir = t.testdir({
    'gateway.yaml': [
      'upstreams:', //                               1
      '  app: { url: "http://127.0.0.1:1" }', //     2
      'routes:', //                                  3
      '  - name: a', //                              4
      '    match: { path: /a }', //                  5
      '    upstream: ghost', //                      6
      '    public: true', //                         7
      '  - name: a', //                              8
      '    match: { path: /b }', //                  9
      '    upstream: app', //                        10
      '',
    ].join('\n'),
  });
  const file = join(dir, 'gateway.yaml');
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:6:\\d+: routes\\[0\\]\\.upstream: unknown upstream "ghost"`));
  t.match(r.stderr, /:8:\d+: routes\[1\]\.name: duplicate route name "a"/);
  t.match(r.stderr, /:8:\d+: routes\[1\]: route "a" needs "allow" rules or "public: true"/);
  t.match(r.stderr, /3 errors/);
});

t.test('an unset ${VAR} is an error with its line; a set one is substituted', async (t) => {
  const yaml = ['upstreams:', '  app: { url: "${GATEHOUSE_TEST_UPSTREAM_URL}" }', 'routes: []', ''].join('\n');
  const dir = t.testdir({ 'gateway.yaml': yaml });
  const file = join(dir, 'gateway.yaml');
  const env = { ...process.env };
  delete env.GATEHOUSE_TEST_UPSTREAM_URL;
  const unset = await runCli(t, ['check', '-c', file], env);
  t.equal(unset.code, 1);
  t.match(unset.stderr, /:2:\d+: [^\n]*GATEHOUSE_TEST_UPSTREAM_URL is not set/);
  const set = await runCli(t, ['check', '-c', file], { GATEHOUSE_TEST_UPSTREAM_URL: 'http://127.0.0.1:9' });
  t.equal(set.code, 0, set.stderr);
});

t.test('a YAML syntax error names its line', async (t) => {
  const dir = t.testdir({ 'gateway.yaml': 'server:\n  listen: 127.0.0.1:0\nroutes:\n  - { name: a, match: { path: /a }\n' });
  const file = join(dir, 'gateway.yaml');
  const r = await runCli(t, ['check', '-c', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, /gateway\.yaml:\d+:\d+: invalid YAML/);
});

t.test('a missing file is an error; usage errors exit 2', async (t) => {
  const r = await runCli(t, ['check', '-c', '/nonexistent/gateway.yaml']);
  t.equal(r.code, 1);
  t.match(r.stderr, /cannot read configuration file: ENOENT/);
  const u = await runCli(t, ['check', '--bogus']);
  t.equal(u.code, 2);
});

t.test('a shadowed route is a warning, not an error', async (t) => {
  const dir = t.testdir({
    'gateway.yaml': [
      'routes:',
      '  - { name: all, match: { path: /api/** }, public: true, respond: { body: a } }',
      '  - { name: users, match: { path: /api/users/*, methods: [GET] }, public: true, respond: { body: b } }',
      '',
    ].join('\n'),
  });
  const r = await runCli(t, ['check', '-c', join(dir, 'gateway.yaml')]);
  t.equal(r.code, 0);
  t.match(r.stderr, /warning: [^\n]*:3:\d+: routes\[1\]\.match: route "users" can never match: route "all"/);
});

t.test('{ file: path } secrets: read relative to the config; a missing file is an error', async (t) => {
  const yaml = (secretFile: string) =>
    ['upstreams:', '  app:', '    url: "http://127.0.0.1:9"', '    credentials:', `      bearer: { file: ${secretFile} }`, 'routes: []', ''].join('\n');
  const dir = t.testdir({ 'ok.yaml': yaml('./secrets/token'), 'bad.yaml': yaml('./secrets/missing'), secrets: { token: 's3cr3t-value\n' } });
  const ok = await runCli(t, ['check', '-c', join(dir, 'ok.yaml')]);
  t.equal(ok.code, 0, ok.stderr);
  const bad = await runCli(t, ['check', '-c', join(dir, 'bad.yaml')]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /bad\.yaml:\d+:\d+: upstreams\.app\.credentials[^\n]*secrets\/missing/);
  t.notMatch(ok.stdout + ok.stderr + bad.stderr, /s3cr3t-value/, 'the secret never appears');
});
