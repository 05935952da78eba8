import t from 'tap';
import { canonicalName } from '../../../src/pipeline/transform.js';
import { equalsLowerCase, lowerCase } from '../../../src/util/ascii.js';

// Every Latin-1 character (header text is one byte a character), alone and inside a name.
const chars = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i));
const samples = [
  ...chars,
  ...chars.map((c) => `x-${c}-id`),
  'Host', 'host', 'HOST', 'Authorization', 'authorization', 'Content-Length', 'X_Gatehouse_Subject', 'x.gatehouse.roles',
  'Bearer', 'bearer', 'BEARER', 'Keep-Alive', 'keep-alive', 'Close', 'API.Example.COM:8443', 'bücher.example', 'ÀÉÎ', 'K', '',
];

t.test('lowerCase() gives exactly what toLowerCase() gives', async (t) => {
  const wrong = samples.filter((s) => lowerCase(s) !== s.toLowerCase());
  t.same(wrong, [], 'no string lower-cases differently');
});

t.test('equalsLowerCase(s, l) is s.toLowerCase() === l', async (t) => {
  const targets = ['host', 'authorization', 'transfer-encoding', 'content-length', 'bearer', 'k', 'x-a-id'];
  const wrong: string[] = [];
  for (const s of [...samples, ...targets, ...targets.map((x) => x.toUpperCase())]) {
    for (const l of targets) if (equalsLowerCase(s, l) !== (s.toLowerCase() === l)) wrong.push(`${JSON.stringify(s)} vs ${l}`);
  }
  t.same(wrong, [], 'no pair compares differently');
  t.ok(equalsLowerCase('HoSt', 'host'));
  t.notOk(equalsLowerCase('hosts', 'host'), 'a longer name is another name');
  t.notOk(equalsLowerCase('ho\u0160t', 'host'), 'a character outside ASCII never stands for a letter');
});

t.test('canonicalName() lower-cases and reads "_" and "." as "-", returning a canonical name as it is', async (t) => {
  const slow = (n: string) => n.toLowerCase().replace(/[_.]/g, '-');
  const wrong = samples.filter((s) => canonicalName(s) !== slow(s));
  t.same(wrong, [], 'same result as lower-casing and replacing');
  t.equal(canonicalName('X_Gatehouse.Subject'), 'x-gatehouse-subject');
});
