/**
 * `gatehouse accounts …` as a user runs it: `node dist/cli/bin.js` in a
 * child process, on a store in the test's own directory.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { runCli } from '../helpers/cli.js';

const BIN = resolve(import.meta.dirname, '../../dist/cli/bin.js');

const CONFIG = `
server: { listen: 127.0.0.1:0 }
store: file:./state/accounts.json
accounts: { max_lifetime: 24mo }
roles:
  admin:    { includes: [operator] }
  operator: { includes: [viewer] }
  viewer:   {}
routes:
  - { name: read, match: { path: /api/** }, respond: { body: ok }, allow: [{ roles: [viewer] }] }
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `gatehouse …` in a child process, as a user runs it. */
function gatehouse(cwd: string, ...args: string[]): Promise<Run> {
  return new Promise((res, rej) => {
    const env = { ...process.env };
    delete env.GATEHOUSE_CONFIG;
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
  });
}

/**
 * The same CLI code in-process: spawning node costs seconds on a loaded
 * machine, so only the tests about processes (output streams, concurrency,
 * exit status) spawn.
 */
function inproc(dir: string, ...args: string[]): Promise<Run> {
  return runCli([...args, '-c', join(dir, 'gateway.yaml')]);
}

function setup(tt: Test): string {
  const dir = tt.testdir({ 'gateway.yaml': CONFIG });
  return dir;
}

t.test('create prints the token once on stdout, with a warning on stderr; listings never show it', async (t) => {
  const dir = setup(t);
  const c = await gatehouse(dir, 'accounts', 'create', 'demo', '--role', 'viewer', '--team', 'finance:operator', '--description', 'for the demo', '-c', 'gateway.yaml');
  t.equal(c.code, 0, c.stderr);
  const token = c.stdout.trim();
  t.match(token, /^gth_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$/);
  t.match(c.stderr, /shown only this once/);
  t.notOk(c.stderr.includes(token), 'the warning does not repeat the token');
  const secret = token.slice(17, 60);
  const outputs = [
    await gatehouse(dir, '-c', 'gateway.yaml', 'accounts', 'list'),
    await inproc(dir, 'accounts', 'list', '--json'),
    await inproc(dir, 'accounts', 'show', 'demo'),
    await inproc(dir, 'accounts', 'show', 'demo', '--json'),
    await inproc(dir, 'explain', '--token', token, 'GET', '/api/x'),
    await inproc(dir, 'explain', '--json', '--token', token, 'GET', '/api/x'),
  ];
  for (const o of outputs) {
    t.equal(o.code, 0, o.stderr);
    t.notOk((o.stdout + o.stderr).includes(secret), 'no token secret in a listing');
  }
  t.match(outputs[0]!.stdout, /demo\s+viewer\s+finance:operator\s+[0-9A-Za-z]{12}\s+active/);
  const list = JSON.parse(outputs[1]!.stdout) as unknown[];
  t.match(list, [{ name: 'demo', role: 'viewer', teams: { finance: 'operator' }, description: 'for the demo', tokens: [{ status: 'active' }] }]);
  t.notOk(outputs[1]!.stdout.includes('hash'), 'no hash in listings either');
  t.match(outputs[4]!.stdout, /caller:\s+service_account "demo"/);
  t.match(JSON.parse(outputs[5]!.stdout), { decision: 'allow', reason: 'granted', route: { name: 'read' } });
  const stored = readFileSync(join(dir, 'state/accounts.json'), 'utf8');
  t.notOk(stored.includes(secret), 'the store keeps only a hash');
  t.notOk(stored.includes(token));
});

t.test('refusals exit 1 with a clear message; usage errors exit 2', async (t) => {
  const dir = setup(t);
  t.equal((await inproc(dir, 'accounts', 'create', 'a', '--role', 'viewer')).code, 0);
  const cases: [string[], number, RegExp][] = [
    [['accounts', 'create', 'a', '--role', 'viewer'], 1, /account "a" already exists/],
    [['accounts', 'create', 'b', '--role', 'superuser'], 1, /unknown role "superuser" \(declared roles in gateway.yaml: admin, operator, viewer\)/],
    [['accounts', 'create', 'b', '--role', 'viewer', '--team', 'x:boss'], 1, /unknown role "boss" for team "x"/],
    [['accounts', 'create', 'b', '--role', 'viewer', '--expires-in', '36mo'], 1, /exceeds accounts.max_lifetime \(24mo\)/],
    [['accounts', 'show', 'nobody'], 1, /unknown account "nobody"/],
    [['accounts', 'rotate', 'nobody'], 1, /unknown account "nobody"/],
    [['accounts', 'revoke', 'nobody'], 1, /unknown account "nobody"/],
    [['accounts', 'delete', 'nobody'], 1, /unknown account "nobody"/],
    [['accounts', 'create', 'b'], 2, /needs --role/],
    [['accounts', 'create', 'b', '--role', 'viewer', '--expires-in', 'soon'], 2, /expected a duration/],
    [['accounts', 'frobnicate'], 2, /unknown subcommand/],
    [['accounts', 'show'], 2, /needs an account NAME/],
    [['accounts', 'list', '--bogus'], 2, /Unknown option/],
    [['accounts', 'revoke', 'a', '--grace', '1h'], 2, /does not take --grace/],
  ];
  for (const [args, code, message] of cases) {
    const r = await inproc(dir, ...args);
    t.equal(r.code, code, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
    t.equal(r.stdout, '', 'nothing on stdout');
  }
});

t.test('rotate prints the new token once; revoke and delete; lifetimes 6mo/12mo/24mo', async (t) => {
  const dir = setup(t);
  for (const [name, life, months] of [['six', '6mo', 6], ['twelve', undefined, 12], ['two-years', '24mo', 24]] as const) {
    const r = await inproc(dir, 'accounts', 'create', name, '--role', 'viewer', '--json', ...(life ? ['--expires-in', life] : []));
    t.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { expires: string; token: string };
    const expected = new Date();
    expected.setUTCMonth(expected.getUTCMonth() + months);
    t.ok(Math.abs(Date.parse(j.expires) - expected.getTime()) < 60_000, `${name} expires in ${months} calendar months`);
  }
  const rot = await inproc(dir, 'accounts', 'rotate', 'six', '--grace', '1h');
  t.equal(rot.code, 0, rot.stderr);
  t.match(rot.stdout.trim(), /^gth_/);
  t.match(rot.stderr, /valid until/);
  const show = JSON.parse((await inproc(dir, 'accounts', 'show', 'six', '--json')).stdout) as { tokens: { status: string }[] };
  t.same(show.tokens.map((x) => x.status), ['grace', 'active']);
  const rev = await inproc(dir, 'accounts', 'revoke', 'six', '--json');
  t.equal(rev.code, 0);
  t.equal((JSON.parse(rev.stdout) as { revoked: string[] }).revoked.length, 2, 'revoke ends the grace period too');
  const del = await inproc(dir, 'accounts', 'delete', 'twelve');
  t.equal(del.code, 0);
  const names = (JSON.parse((await inproc(dir, 'accounts', 'list', '--json')).stdout) as { name: string }[]).map((a) => a.name);
  t.same(names, ['six', 'two-years']);

  const audit = readFileSync(join(dir, 'data/audit.log'), 'utf8');
  const events = audit.trim().split('\n').map((l) => JSON.parse(l) as { event: string; account: string; key_id?: string; principal: { kind: string } });
  t.same(events.map((e) => `${e.event} ${e.account}`), [
    'account.created six',
    'account.created twelve',
    'account.created two-years',
    'token.rotated six',
    'token.revoked six',
    'token.revoked six',
    'account.deleted twelve',
  ]);
  t.equal(events[0]!.principal.kind, 'operator');
  t.notOk(/gth_[0-9A-Za-z]{12}_/.test(audit), 'no token in the audit log');
  const verify = await inproc(dir, 'audit', 'verify');
  t.equal(verify.code, 0, `the chain verifies: ${verify.stdout}${verify.stderr}`);
});

t.test('concurrent creates from 8 processes lose no account', async (t) => {
  const dir = setup(t);
  const names = Array.from({ length: 8 }, (_, i) => `svc-${i}`);
  const runs = await Promise.all(names.map((n) => gatehouse(dir, 'accounts', 'create', n, '--role', 'viewer')));
  for (const r of runs) t.equal(r.code, 0, r.stderr);
  const data = JSON.parse(readFileSync(join(dir, 'state/accounts.json'), 'utf8')) as { accounts: { name: string }[] };
  t.same(data.accounts.map((a) => a.name).sort(), names.sort(), 'every account is in the store');
  const tokens = new Set(runs.map((r) => r.stdout.trim()));
  t.equal(tokens.size, 8, 'eight distinct tokens');
});

t.test('a damaged store: every command refuses, and the file is left as it was', async (t) => {
  const dir = setup(t);
  t.equal((await inproc(dir, 'accounts', 'create', 'a', '--role', 'viewer')).code, 0);
  const file = join(dir, 'state/accounts.json');
  const damaged = readFileSync(file, 'utf8').slice(0, 40);
  writeFileSync(file, damaged);
  const spawned = await gatehouse(dir, 'accounts', 'create', 'b', '--role', 'viewer');
  t.equal(spawned.code, 1, 'the process exits 1');
  t.match(spawned.stderr, /Cannot read token store ".*accounts\.json": not valid JSON/);
  for (const args of [['accounts', 'list'], ['accounts', 'revoke', 'a'], ['check']]) {
    const r = await inproc(dir, ...args);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.stderr, /Cannot read token store ".*accounts\.json": not valid JSON/, args.join(' '));
  }
  t.equal(readFileSync(file, 'utf8'), damaged, 'never overwritten');
});
