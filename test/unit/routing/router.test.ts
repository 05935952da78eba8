import t from 'tap';
import { compileHost, compilePathPattern, normalizeHost, patternCovers, stripPrefix } from '../../../src/routing/router.js';

t.test('compilePathPattern(): exact, * one segment, ** any depth', async (t) => {
  const m = (pattern: string, yes: string[], no: string[]) => {
    const f = compilePathPattern(pattern);
    for (const p of yes) t.ok(f(p), `${pattern} matches ${p}`);
    for (const p of no) t.notOk(f(p), `${pattern} does not match ${p}`);
  };
  m('/status', ['/status'], ['/status/', '/statusx', '/Status', '/']);
  m('/x/**', ['/x', '/x/', '/x/y', '/x/y/z'], ['/xy', '/', '/y/x']);
  m('/**', ['/', '/a', '/a/b/c'], []);
  m('/users/*', ['/users/1', '/users/abc'], ['/users', '/users/', '/users/1/2']);
  m('/users/*/orders', ['/users/1/orders'], ['/users//orders', '/users/1/2/orders', '/users/1/orders/x']);
  m('/a/*/b/**', ['/a/1/b', '/a/1/b/', '/a/1/b/c/d'], ['/a/1', '/a/1/bc', '/a//b']);
  m('/a.b/*', ['/a.b/c'], ['/axb/c'], );
  m('/v1+(x)/*', ['/v1+(x)/c'], ['/v1x/c', '/v11/c']);
});

t.test('normalizeHost() and compileHost(): case-insensitive, without port and trailing dot', async (t) => {
  t.equal(normalizeHost('API.Example.COM:8443'), 'api.example.com');
  t.equal(normalizeHost('api.example.com.'), 'api.example.com');
  t.equal(normalizeHost('api.example.com.:80'), 'api.example.com');
  t.equal(normalizeHost('[::1]:8080'), '[::1]');
  t.equal(normalizeHost('[::1]'), '[::1]');
  t.equal(compileHost(undefined), undefined);
  const exact = compileHost('Api.Example.com.')!;
  t.ok(exact('api.example.com'));
  t.notOk(exact('x.api.example.com'));
  const wild = compileHost('*.example.com')!;
  t.ok(wild('a.example.com'));
  t.ok(wild('a.b.example.com'));
  t.notOk(wild('example.com'));
  t.notOk(wild('evilexample.com'));
});

t.test('stripPrefix() strips at a segment boundary only', async (t) => {
  t.equal(stripPrefix('/billing/x', '/billing'), '/x');
  t.equal(stripPrefix('/billing', '/billing'), '/');
  t.equal(stripPrefix('/billing/', '/billing'), '/');
  t.equal(stripPrefix('/billingx/y', '/billing'), '/billingx/y');
  t.equal(stripPrefix('/a/b', undefined), '/a/b');
});

t.test('patternCovers(): conservative shadowing test', async (t) => {
  t.ok(patternCovers('/**', '/a/b'));
  t.ok(patternCovers('/a/**', '/a/b/*'));
  t.ok(patternCovers('/a/**', '/a/**'));
  t.ok(patternCovers('/a/*', '/a/b'));
  t.ok(patternCovers('/a', '/a'));
  t.notOk(patternCovers('/a/*', '/a/**'));
  t.notOk(patternCovers('/a/b', '/a/*'));
  t.notOk(patternCovers('/a/*', '/a/b/c'));
  t.notOk(patternCovers('/b/**', '/a/b'));
});
