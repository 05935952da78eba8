/**
 * Listeners: plain HTTP, HTTPS (certificate reloaded when its files change)
 * and their limits (DESIGN.md §10), plus the handler for requests Node
 * cannot parse (oversized headers, slow clients, malformed requests).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Limits } from '../config/compile.js';
import { FilePoll, stampFile, type Stamps } from '../util/file-poll.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export function serverOptions(limits: Limits): http.ServerOptions {
  return {
    maxHeaderSize: limits.maxHeaderSize,
    requestTimeout: limits.requestTimeout,
    headersTimeout: limits.headersTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    // Enforce headers/request timeouts to within a second (Node checks every 30 s by default).
    connectionsCheckingInterval: 1_000,
    // Host is checked by the pipeline, so that its refusal is a problem+json with an audit record.
    requireHostHeader: false,
  };
}

export interface TlsFiles {
  cert: string;
  key: string;
  client_ca?: string | undefined;
}

/** Reads the TLS files, stamping each into `stamps` before it is read. */
function readTls(files: TlsFiles, baseDir: string, stamps: Stamps): https.ServerOptions {
  const read = (file: string) => {
    const path = resolve(baseDir, file);
    stamps.set(path, stampFile(path));
    return readFileSync(path);
  };
  const opts: https.ServerOptions = { cert: read(files.cert), key: read(files.key) };
  if (files.client_ca) {
    opts.ca = read(files.client_ca);
    opts.requestCert = true;
    opts.rejectUnauthorized = true;
  }
  return opts;
}

export function createHttpsServer(files: TlsFiles, baseDir: string, limits: Limits, log: Logger): { server: https.Server; stopWatching: () => void } {
  let stamps: Stamps = new Map();
  const server = https.createServer({ ...serverOptions(limits), ...readTls(files, baseDir, stamps), minVersion: 'TLSv1.2' });
  const cert = resolve(baseDir, files.cert);
  let timer: NodeJS.Timeout | undefined;
  const poll = new FilePoll(() => {
    clearTimeout(timer);
    // Wait for both files of a renewal to be written.
    timer = setTimeout(() => {
      stamps = new Map();
      try {
        server.setSecureContext(readTls(files, baseDir, stamps));
        log.info({ cert }, 'TLS certificate reloaded');
      } catch (err) {
        log.error({ err, cert }, 'TLS certificate reload failed; the previous certificate keeps serving');
      }
      poll.track(stamps);
    }, 200);
  });
  poll.track(stamps);
  return {
    server,
    stopWatching: () => {
      clearTimeout(timer);
      poll.close();
    },
  };
}

export function listen(server: http.Server, addr: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolveP, reject) => {
    const onError = (err: Error) => reject(new Error(`cannot listen on ${addr.host}:${addr.port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    server.once('error', onError);
    server.listen(addr.port, addr.host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolveP({ host: a.address, port: a.port });
    });
  });
}

/** Answers what Node could not parse: 431 for oversized headers, 408 for slow clients, else 400. */
export function clientErrorStatus(err: NodeJS.ErrnoException): { status: number; reason: string } | undefined {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, reason: 'headers_too_large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      return { status: 408, reason: 'request_timeout' };
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined;
    default:
      return { status: 400, reason: 'request_malformed' };
  }
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((r) => {
    if (!server.listening) return r();
    server.close(() => r());
    server.closeIdleConnections();
  });
}

export type { Socket };
