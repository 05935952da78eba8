// The bare reference proxy: the least a Node reverse proxy can do on
// undici's dispatcher API, with no auth, no logging and no metrics — the
// throughput limit for one Node process (issue 6). Same pool settings as
// Gatehouse's upstreams (src/upstream/upstream.ts).
// Usage: node bare-proxy.mjs PORT UPSTREAM_ORIGIN
import http from 'node:http';
import { Pool } from 'undici';

const [port, origin] = [Number(process.argv[2]), process.argv[3]];
const pool = new Pool(origin, { connections: 128, pipelining: 1, keepAliveTimeout: 4_000 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

http
  .createServer((req, res) => {
    const headers = [];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
    const body = req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined ? null : req;
    pool.dispatch(
      { path: req.url, method: req.method, headers, body },
      {
        onRequestStart() {},
        onResponseStart(_c, status, h) {
          const out = {};
          for (const k in h) if (!HOP.has(k)) out[k] = h[k];
          res.writeHead(status, out);
        },
        onResponseData(c, chunk) {
          if (!res.write(chunk)) {
            c.pause();
            res.once('drain', () => c.resume());
          }
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_c, err) {
          if (res.headersSent) return res.destroy(err);
          res.writeHead(502).end();
        },
      },
    );
  })
  .listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
