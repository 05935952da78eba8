/**
 * Shared argument handling: `-c FILE` may stand anywhere; exit codes are
 * 0 done, 1 refused or invalid, 2 usage.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

export const defaultIo: CliIo = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
  env: process.env,
};

export function configPath(values: { config?: string | boolean | undefined | (string | boolean)[] }, env: NodeJS.ProcessEnv): string {
  const c = values.config;
  if (typeof c === 'string') return c;
  return env.GATEHOUSE_CONFIG ?? './gateway.yaml';
}

/** parseArgs with `-c/--config` and `--help` added, strict, positionals allowed; usage errors become UsageError. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({
      args,
      options: { ...options, config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export type CommandHandler = (args: string[], io: CliIo) => Promise<number>;
