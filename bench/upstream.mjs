// The benchmark upstream: a small, fast node:http server answering every
// request with the same short body. Usage: node upstream.mjs PORT
import http from 'node:http';

const port = Number(process.argv[2]);
const body = Buffer.from('{"ok":true,"from":"bench-upstream"}\n');
const headers = ['content-type', 'application/json', 'content-length', String(body.length)];

const server = http.createServer((req, res) => {
  // Drain any request body before answering (the benchmark sends none).
  if (req.readableEnded || req.headers['content-length'] === undefined) {
    res.writeHead(200, headers);
    res.end(body);
    return;
  }
  req.resume();
  req.on('end', () => {
    res.writeHead(200, headers);
    res.end(body);
  });
});
// Longer than any proxy's pool keep-alive, so that pooled connections are reused, not churned.
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
