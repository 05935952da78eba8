/**
 * The operator log: pino JSON lines. Redaction is a second line of defence —
 * no code path logs a token, secret or Authorization value on purpose.
 */
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  'token',
  'secret',
  'password',
  'client_secret',
  '*.authorization',
  '*.token',
  '*.secret',
  '*.password',
  '*.client_secret',
  '*.access_token',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env.GATEHOUSE_LOG_LEVEL ?? 'info',
      base: { service: 'gatehouse' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
