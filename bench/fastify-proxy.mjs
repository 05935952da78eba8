// The Node peer: @fastify/http-proxy with its defaults (undici underneath),
// no auth, logging off. Usage: node fastify-proxy.mjs PORT UPSTREAM_ORIGIN
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const [port, origin] = [Number(process.argv[2]), process.argv[3]];
const app = Fastify({ logger: false });
await app.register(proxy, { upstream: origin, prefix: '/' });
await app.listen({ port, host: '127.0.0.1' });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
