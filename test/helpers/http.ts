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
