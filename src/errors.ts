/**
 * The error model: every refusal or failure the gateway answers itself is a
 * GatewayError with a stable `GW_*` code (clients and tests switch on it), an
 * HTTP status and an audit `reason`. Foreign errors are mapped at the
 * boundary that meets them; anything unmapped becomes a generic 500.
 */
import { STATUS_CODES } from 'node:http';

export type GatewayErrorCode =
  | 'GW_BAD_REQUEST'
  | 'GW_ROUTE_NOT_FOUND'
  | 'GW_NOT_FOUND'
  | 'GW_METHOD_NOT_ALLOWED'
  | 'GW_CONFLICT'
  | 'GW_UNAUTHENTICATED'
  | 'GW_FORBIDDEN'
  | 'GW_PAYLOAD_TOO_LARGE'
  | 'GW_HEADERS_TOO_LARGE'
  | 'GW_REQUEST_TIMEOUT'
  | 'GW_UPSTREAM_UNAVAILABLE'
  | 'GW_UPSTREAM_TIMEOUT'
  | 'GW_UPSTREAM_CREDENTIALS'
  | 'GW_AUTH_UNAVAILABLE'
  | 'GW_AUDIT_UNAVAILABLE'
  | 'GW_SHUTTING_DOWN'
  | 'GW_INTERNAL';

const TITLES: Record<GatewayErrorCode, string> = {
  GW_BAD_REQUEST: 'Bad Request',
  GW_ROUTE_NOT_FOUND: 'Not Found',
  GW_NOT_FOUND: 'Not Found',
  GW_METHOD_NOT_ALLOWED: 'Method Not Allowed',
  GW_CONFLICT: 'Conflict',
  GW_UNAUTHENTICATED: 'Unauthorized',
  GW_FORBIDDEN: 'Forbidden',
  GW_PAYLOAD_TOO_LARGE: 'Content Too Large',
  GW_HEADERS_TOO_LARGE: 'Request Header Fields Too Large',
  GW_REQUEST_TIMEOUT: 'Request Timeout',
  GW_UPSTREAM_UNAVAILABLE: 'Bad Gateway',
  GW_UPSTREAM_TIMEOUT: 'Gateway Timeout',
  GW_UPSTREAM_CREDENTIALS: 'Bad Gateway',
  GW_AUTH_UNAVAILABLE: 'Service Unavailable',
  GW_AUDIT_UNAVAILABLE: 'Service Unavailable',
  GW_SHUTTING_DOWN: 'Service Unavailable',
  GW_INTERNAL: 'Internal Server Error',
};

/** Client-facing details: generic on purpose, never verifier or upstream detail. */
const DETAILS: Record<GatewayErrorCode, string> = {
  GW_BAD_REQUEST: 'The request is malformed or ambiguous.',
  GW_ROUTE_NOT_FOUND: 'No route matches this request.',
  GW_NOT_FOUND: 'The resource does not exist.',
  GW_METHOD_NOT_ALLOWED: 'The method is not allowed on this resource.',
  GW_CONFLICT: 'The resource already exists.',
  GW_UNAUTHENTICATED: 'A valid bearer token is required.',
  GW_FORBIDDEN: 'The caller is not allowed to make this request.',
  GW_PAYLOAD_TOO_LARGE: 'The request body is larger than allowed.',
  GW_HEADERS_TOO_LARGE: 'The request headers are larger than allowed.',
  GW_REQUEST_TIMEOUT: 'The request took too long to arrive.',
  GW_UPSTREAM_UNAVAILABLE: 'The upstream service could not be reached.',
  GW_UPSTREAM_TIMEOUT: 'The upstream service did not answer in time.',
  GW_UPSTREAM_CREDENTIALS: 'The gateway could not obtain credentials for the upstream service.',
  GW_AUTH_UNAVAILABLE: 'Authentication is temporarily unavailable.',
  GW_AUDIT_UNAVAILABLE: 'The request cannot be audited right now.',
  GW_SHUTTING_DOWN: 'The gateway is shutting down.',
  GW_INTERNAL: 'An unexpected error occurred.',
};

const STATUS: Record<GatewayErrorCode, number> = {
  GW_BAD_REQUEST: 400,
  GW_ROUTE_NOT_FOUND: 404,
  GW_NOT_FOUND: 404,
  GW_METHOD_NOT_ALLOWED: 405,
  GW_CONFLICT: 409,
  GW_UNAUTHENTICATED: 401,
  GW_FORBIDDEN: 403,
  GW_PAYLOAD_TOO_LARGE: 413,
  GW_HEADERS_TOO_LARGE: 431,
  GW_REQUEST_TIMEOUT: 408,
  GW_UPSTREAM_UNAVAILABLE: 502,
  GW_UPSTREAM_TIMEOUT: 504,
  GW_UPSTREAM_CREDENTIALS: 502,
  GW_AUTH_UNAVAILABLE: 503,
  GW_AUDIT_UNAVAILABLE: 503,
  GW_SHUTTING_DOWN: 503,
  GW_INTERNAL: 500,
};

export interface GatewayErrorOptions {
  /** Audit reason id, e.g. `token_expired`; defaults to a lower-cased code. */
  reason?: string;
  /** Operator-facing detail for the log (never sent to the client). */
  cause?: unknown;
  /** Extra response headers, e.g. WWW-Authenticate. */
  headers?: Record<string, string>;
  /** RFC 6750 error for 401/403 responses. */
  bearerError?: 'invalid_request' | 'invalid_token' | 'insufficient_scope';
  /**
   * A client-facing detail instead of the generic one: only for what the
   * caller sent itself and may read back (the admin API's "unknown role"),
   * never verifier, store or upstream detail.
   */
  detail?: string;
}

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly status: number;
  readonly reason: string;
  readonly headers: Record<string, string> | undefined;
  readonly bearerError: GatewayErrorOptions['bearerError'];
  readonly detail: string | undefined;

  constructor(code: GatewayErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = STATUS[code];
    this.reason = options.reason ?? code.slice(3).toLowerCase();
    this.headers = options.headers;
    this.bearerError = options.bearerError;
    this.detail = options.detail;
  }
}

export interface Problem {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A problem as a whole raw HTTP/1.1 response that closes the connection: for
 * sockets with no ServerResponse (unparseable requests, refused upgrades).
 */
export function rawProblemResponse(p: Problem, requestId: string): string {
  const head = [`HTTP/1.1 ${p.status} ${STATUS_CODES[p.status] ?? 'Error'}`, 'connection: close', `x-request-id: ${requestId}`];
  for (const [k, v] of Object.entries(p.headers)) head.push(`${k}: ${v}`);
  return head.join('\r\n') + '\r\n\r\n' + p.body;
}

/** Renders an error as an RFC 9457 problem document. Unknown errors become a generic 500. */
export function toProblem(err: unknown, requestId: string): Problem {
  const e = err instanceof GatewayError ? err : new GatewayError('GW_INTERNAL', 'unexpected error', { cause: err });
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
    ...e.headers,
  };
  if (e.status === 401) {
    headers['www-authenticate'] = `Bearer realm="gatehouse"${e.bearerError ? `, error="${e.bearerError}"` : ''}`;
  } else if (e.status === 403 && e.bearerError === 'insufficient_scope') {
    headers['www-authenticate'] = 'Bearer realm="gatehouse", error="insufficient_scope"';
  }
  const body = JSON.stringify({
    type: `https://gatehouse.dev/problems/${e.code.slice(3).toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[e.code],
    status: e.status,
    detail: e.detail ?? DETAILS[e.code],
    code: e.code,
    request_id: requestId,
  });
  headers['content-length'] = String(Buffer.byteLength(body));
  return { status: e.status, headers, body };
}
