/** A recording upstream on 127.0.0.1 port 0: what arrived, exactly as it arrived. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Tap } from './gateway.js';

export interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface StartedUpstream {
  url: string;
  port: number;
  requests: Recorded[];
  server: http.Server;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

const defaultHandler: UpstreamHandler = (req, res, body) => {
  const text = JSON.stringify({ method: req.method, url: req.url, bytes: body.length });
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
  res.end(text);
};

/** Closes a test server, and every connection still open on it, when the test ends. */
export function closeOnTeardown(t: Tap, server: http.Server): void {
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
}

export async function startUpstream(t: Tap, handler: UpstreamHandler = defaultHandler): Promise<StartedUpstream> {
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closeOnTeardown(t, server);
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, requests, server };
}
