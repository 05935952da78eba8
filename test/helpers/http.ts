/** A raw HTTP/1.1 exchange over TCP, for requests that fetch() would refuse to send or would fix up. */
import net from 'node:net';

export function rawRequest(port: number, text: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(out);
    }, timeoutMs);
    sock.on('data', (d) => (out += d.toString('latin1')));
    sock.on('end', () => {
      clearTimeout(timer);
      resolve(out);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      if (out) resolve(out);
      else reject(e);
    });
    sock.write(text);
  });
}

/** Status code of the first response in a raw reply. */
export function statusOf(raw: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? 0);
}

/** Builds a raw request from lines (CRLF-joined, ending with an empty line) plus an optional body. */
export function requestText(lines: string[], body = ''): string {
  return lines.join('\r\n') + '\r\n\r\n' + body;
}

/** Splits a raw reply into status, lower-cased headers and body (first response only, no de-chunking). */
export function parseReply(raw: string): { status: number; headers: Record<string, string>; body: string } {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: statusOf(raw), headers, body: end === -1 ? '' : raw.slice(end + 4) };
}
