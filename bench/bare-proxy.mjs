// The bare reference proxy: the least a Node reverse proxy can do on
// undici's dispatcher API, with no auth, no logging and no metrics — the
// throughput limit for one Node process (issue 6). Same pool settings as
// Gatehouse's upstreams (src/upstream/upstream.ts).
// Usage: node bare-proxy.mjs PORT UPSTREAM_ORIGIN
// BARE_SPIN_US=N adds N µs of pure CPU per request (bench/calibrate.mjs): what
// a given amount of work per request costs in throughput. Unset, the
// handler is exactly the bare one.
import http from 'node:http';
import { Pool } from 'undici';

const [port, origin] = [Number(process.argv[2]), process.argv[3]];
const pool = new Pool(origin, { connections: 128, pipelining: 1, keepAliveTimeout: 4_000 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

const SPIN_US = Number(process.env.BARE_SPIN_US ?? 0);

function handler(req, res) {
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
          // The client went away: abort, or the paused request would hold its upstream connection for ever
          // (200 clients that hung up before their answer used to stall the whole pool).
          if (res.destroyed || res.socket?.destroyed === true) return c.abort(new Error('client went away'));
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
}

/** Busy for SPIN_US microseconds, then the bare handler. */
function spinning(req, res) {
  const end = performance.now() + SPIN_US / 1000;
  while (performance.now() < end);
  handler(req, res);
}

http.createServer(SPIN_US > 0 ? spinning : handler).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
