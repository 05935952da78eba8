import t from 'tap';
import { GatewayError } from '../../../src/errors.js';
import { normalizePath, splitTarget } from '../../../src/routing/normalize.js';

const reason = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof GatewayError ? `${err.status} ${err.reason}` : String(err);
  }
};

t.test('normalizePath() leaves a plain path untouched', async (t) => {
  for (const p of ['/', '/a', '/a/b/c', '/a/b/', "/a-b_c.d~e!$&'()*+,=:@", '/.well-known/x', '/a/.b', '/a/..b', '/a/...']) t.equal(normalizePath(p), p, p);
});

t.test('normalizePath() decodes unreserved escapes, upper-cases the rest, resolves dots and merges slashes', async (t) => {
  const cases: [string, string][] = [
    ['/%41%7A%30%2D%2E%5F%7E', '/Az0-._~'],
    ['/a%2cb', '/a%2Cb'],
    ['/a b', '/a%20b'],
    ['/a"b<c>', '/a%22b%3Cc%3E'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    // Node hands raw request-target bytes over as latin1: raw UTF-8 is re-encoded.
    ['/caf\u00c3\u00a9', '/caf%C3%A9'],
    ['//a//b//', '/a/b/'],
    ['/a/./b/.', '/a/b/'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/%2e%2E/b', '/b'],
    ['/a/..', '/'],
    ['/.', '/'],
    ['/./', '/'],
  ];
  for (const [from, to] of cases) t.equal(normalizePath(from), to, `${from} → ${to}`);
});

t.test('normalizePath() refuses what DESIGN §10 refuses, with 400 and a reason', async (t) => {
  const cases: [string, string][] = [
    ['/a%2Fb', 'path_forbidden_escape'],
    ['/a%5cb', 'path_forbidden_escape'],
    ['/a%3Bb', 'path_forbidden_escape'],
    ['/a%25b', 'path_forbidden_escape'],
    ['/a%3Fb', 'path_forbidden_escape'],
    ['/a%23b', 'path_forbidden_escape'],
    ['/a%00b', 'path_control_char'],
    ['/a%1fb', 'path_control_char'],
    ['/a%7Fb', 'path_control_char'],
    ['/a\tb', 'path_control_char'],
    ['/a\u007fb', 'path_control_char'],
    ['/a\\b', 'path_backslash'],
    ['/a%zz', 'path_invalid_escape'],
    ['/a%4', 'path_invalid_escape'],
    ['/a%', 'path_invalid_escape'],
    ['/%C0%AF', 'path_invalid_utf8'],
    ['/%E2%82', 'path_invalid_utf8'],
    ['/%E2%82/x', 'path_invalid_utf8'],
    ['/%80', 'path_invalid_utf8'],
    ['/..', 'path_traversal'],
    ['/a/../..', 'path_traversal'],
    ['/a/../../b', 'path_traversal'],
    ['a/b', 'path_invalid'],
    ['', 'path_invalid'],
    ['/\u0100', 'path_invalid'],
    ['/caf\u00e9', 'path_invalid_utf8'],
  ];
  for (const [p, r] of cases) t.equal(reason(() => normalizePath(p)), `400 ${r}`, `${JSON.stringify(p)} → ${r}`);
});

t.test('normalizePath() is idempotent on its output', async (t) => {
  for (const p of ['/a/%7e/b', '//x/./y/../z', '/caf%c3%a9/%20', '/a/b/..']) {
    const once = normalizePath(p);
    t.equal(normalizePath(once), once, p);
  }
});

t.test('splitTarget() keeps the query unchanged, with its "?"', async (t) => {
  t.same(splitTarget('/a?b=%2F&c'), { path: '/a', query: '?b=%2F&c' });
  t.same(splitTarget('/a'), { path: '/a', query: '' });
  t.same(splitTarget('/a?'), { path: '/a', query: '?' });
  t.same(splitTarget('/a?b?c'), { path: '/a', query: '?b?c' });
});
