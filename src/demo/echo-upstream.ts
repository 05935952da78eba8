/**
 * A tiny "legacy API" for trying Gatehouse out: it answers every request with
 * a JSON echo of what it received, so that a newcomer sees the identity
 * headers the gateway adds and the ones it removes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export function startEchoUpstream(port: number, host = '127.0.0.1'): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const identity: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-gatehouse-') && typeof v === 'string') identity[k] = v;
      const body = JSON.stringify(
        { message: 'hello from the legacy API behind Gatehouse', method: req.method, url: req.url, identity, request_id: req.headers['x-request-id'], body_bytes: Buffer.concat(chunks).length },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body + '\n');
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: (server.address() as AddressInfo).port }));
  });
}
