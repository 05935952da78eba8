import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import https from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { startGateway } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';

/** A scratch directory of its own: startGateway() owns the test's testdir. */
function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function makeCert(dir: string, cn: string, name: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
}

function get(port: number, path: string): Promise<{ status: number; body: string; cn: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false }, (res) => {
      const cert = (res.socket as TLSSocket).getPeerCertificate();
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cn: String(cert.subject?.CN), fingerprint: cert.fingerprint256 }));
    });
    req.on('error', reject);
  });
}

t.test('HTTPS: requests succeed over TLS; replaced certificate files are served without a restart', async (t) => {
  const up = await startUpstream(t);
  const dir = scratch(t);
  makeCert(dir, 'first.gatehouse.test', 'first');
  makeCert(dir, 'second.gatehouse.test', 'second');
  const g = await startGateway(
    t,
    `
server:
  tls: { listen: 127.0.0.1:0, cert: ${join(dir, 'first.crt')}, key: ${join(dir, 'first.key')} }
upstreams: { app: { url: "${up.url}" } }
routes: [{ name: all, match: { path: /** }, upstream: app, public: true }]
`,
  );
  const port = g.gw.addresses.https!.port;
  const r = await get(port, '/hello?x=1');
  t.equal(r.status, 200);
  t.equal(r.cn, 'first.gatehouse.test');
  t.equal(up.requests[0]?.url, '/hello?x=1');
  t.equal(up.requests[0]?.headers['x-forwarded-proto'], 'https', 'X-Forwarded-Proto says https');

  // Renew: write the new pair over the old files (as certbot or cert-manager would).
  const want = new X509Certificate(readFileSync(join(dir, 'second.crt'))).fingerprint256;
  renameSync(join(dir, 'second.key'), join(dir, 'first.key'));
  renameSync(join(dir, 'second.crt'), join(dir, 'first.crt'));
  let served = '';
  for (let i = 0; i < 150 && served !== want; i++) {
    await new Promise((r) => setTimeout(r, 100));
    served = (await get(port, '/again')).fingerprint;
  }
  t.equal(served, want, 'the new certificate is served');
  t.ok(g.logs.some((l) => l.includes('TLS certificate reloaded')));
  t.equal((await get(port, '/after')).status, 200, 'and requests still succeed');
});

t.test('a broken replacement keeps the previous certificate serving', async (t) => {
  const dir = scratch(t);
  writeFileSync(join(dir, 'junk.txt'), 'not a certificate');
  makeCert(dir, 'keep.gatehouse.test', 'keep');
  const g = await startGateway(
    t,
    `
server:
  tls: { listen: 127.0.0.1:0, cert: ${join(dir, 'keep.crt')}, key: ${join(dir, 'keep.key')} }
routes: [{ name: s, match: { path: /s }, public: true, respond: { body: ok } }]
`,
  );
  const port = g.gw.addresses.https!.port;
  t.equal((await get(port, '/s')).cn, 'keep.gatehouse.test');
  renameSync(join(dir, 'junk.txt'), join(dir, 'keep.crt'));
  for (let i = 0; i < 150 && !g.logs.some((l) => l.includes('TLS certificate reload failed')); i++) await new Promise((r) => setTimeout(r, 100));
  t.ok(g.logs.some((l) => l.includes('TLS certificate reload failed')), 'the failure is logged');
  const r = await get(port, '/s');
  t.equal(r.status, 200);
  t.equal(r.cn, 'keep.gatehouse.test', 'the previous certificate still serves');
});
