import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openTokenStore, StoreError, type StoreData } from '../../../src/authn/token-store.js';

const add = (name: string) => (d: StoreData) => {
  d.accounts.push({ name, description: '', role: 'viewer', teams: {}, scopes: [], created: new Date().toISOString(), tokens: [] });
};

t.test('a missing file is an empty store; updates create it atomically, mode 0600', async (t) => {
  const dir = t.testdir();
  const store = openTokenStore('file:./sub/accounts.json', { baseDir: dir });
  t.equal(store.current().accounts.length, 0);
  await Promise.all(Array.from({ length: 20 }, (_, i) => store.update(add(`a${i}`))));
  const file = join(dir, 'sub/accounts.json');
  t.equal((JSON.parse(readFileSync(file, 'utf8')) as StoreData).accounts.length, 20, 'concurrent updates lose nothing');
  t.notOk(existsSync(file + '.lock'), 'the lock is released');
  t.equal(statSync(file).mode & 0o777, 0o600, 'readable by its owner only');
  await store.close();
});

t.test('a damaged file: open throws a clear StoreError; update never overwrites it', async (t) => {
  const dir = t.testdir({ 'accounts.json': '{"version":1,"accounts":[' });
  t.throws(() => openTokenStore('file:accounts.json', { baseDir: dir }), { name: 'StoreError', message: /Cannot read token store ".*accounts\.json": not valid JSON/ });
  writeFileSync(join(dir, 'accounts.json'), '{"version":1,"accounts":[{"name":"x"}]}');
  t.throws(() => openTokenStore('file:accounts.json', { baseDir: dir }), /accounts\.0\.role/);
  writeFileSync(join(dir, 'accounts.json'), '{"version":1,"accounts":[]}');
  const store = openTokenStore('file:accounts.json', { baseDir: dir });
  writeFileSync(join(dir, 'accounts.json'), 'garbage');
  await t.rejects(store.update(add('a')), StoreError);
  t.equal(readFileSync(join(dir, 'accounts.json'), 'utf8'), 'garbage');
  await store.close();
});

t.test('a stale lock left by a dead process is broken; a live one is waited for', async (t) => {
  const dir = t.testdir({ 'accounts.json.lock': JSON.stringify({ pid: 2 ** 22 + 12345, host: (await import('node:os')).hostname(), time: new Date().toISOString() }) });
  const store = openTokenStore('file:accounts.json', { baseDir: dir });
  await store.update(add('a'));
  t.equal(store.current().accounts.length, 1, 'the dead owner\'s lock was broken');
  writeFileSync(join(dir, 'accounts.json.lock'), JSON.stringify({ pid: process.ppid, host: (await import('node:os')).hostname() }));
  let done = false;
  const p = store.update(add('b')).then(() => (done = true));
  await new Promise((r) => setTimeout(r, 150));
  t.notOk(done, 'waits while the owner lives');
  (await import('node:fs')).unlinkSync(join(dir, 'accounts.json.lock'));
  await p;
  t.equal(store.current().accounts.length, 2);
  await store.close();
});

t.test('a running store sees changes from another writer, keeps the last good snapshot on damage', async (t) => {
  const dir = t.testdir();
  const errors: StoreError[] = [];
  const reader = openTokenStore('file:accounts.json', { baseDir: dir, pollInterval: 50, onError: (e) => errors.push(e) });
  reader.start();
  const writer = openTokenStore('file:accounts.json', { baseDir: dir });
  await writer.update(add('a'));
  const wait = async (pred: () => boolean) => {
    for (let i = 0; i < 60 && !pred(); i++) await new Promise((r) => setTimeout(r, 50));
  };
  await wait(() => reader.current().accounts.length === 1);
  t.equal(reader.current().accounts.length, 1);
  writeFileSync(join(dir, 'accounts.json'), '{');
  await wait(() => errors.length > 0);
  t.ok(errors.length >= 1, 'reported');
  t.equal(reader.current().accounts.length, 1, 'last good snapshot');
  await reader.close();
  await writer.close();
});

t.test('a change made between the first read and start() is still seen', async (t) => {
  // The gateway opens its store while compiling and starts watching once it listens; an account
  // created in between (by `gatehouse accounts create`) used to stay unseen until the next change.
  const dir = t.testdir({ 'accounts.json': '{"version":1,"accounts":[]}' });
  const reader = openTokenStore('file:accounts.json', { baseDir: dir, pollInterval: 50 });
  const writer = openTokenStore('file:accounts.json', { baseDir: dir });
  await writer.update(add('made-before-start'));
  reader.start();
  for (let i = 0; i < 40 && reader.current().accounts.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.same(reader.current().accounts.map((a) => a.name), ['made-before-start']);
  await reader.close();
  await writer.close();
});

t.test('store URLs', async (t) => {
  t.throws(() => openTokenStore('postgres://db/x', { baseDir: '/' }), /not supported yet/);
  t.throws(() => openTokenStore('s3://x', { baseDir: '/' }), /expected "file:PATH"/);
});
