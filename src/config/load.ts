/**
 * Reads gateway.yaml: YAML with line positions → `${VAR}` substitution →
 * zod validation. Every problem becomes a ConfigIssue that names the file,
 * line, column and key path, and says what was expected.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, visit, type Document } from 'yaml';
import { configSchema, type Config } from './schema.js';

export type ConfigPath = readonly (string | number)[];

export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out;
}

/** Where the validated config came from: used to place compile-time errors too. */
export interface ConfigSource {
  file: string;
  baseDir: string;
  issue(path: ConfigPath, message: string): ConfigIssue;
}

export interface LoadedConfig {
  config: Config;
  source: ConfigSource;
  /** Non-fatal findings, e.g. a route that can never match. */
  warnings: ConfigIssue[];
}

/** Parses and validates a YAML text; throws ConfigError listing every problem. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): { config: Config; source: ConfigSource } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const source = makeSource(file, doc, lineCounter);
  const issues: ConfigIssue[] = [];
  for (const e of doc.errors) {
    const pos = lineCounter.linePos(e.pos[0]);
    issues.push({ file, line: pos.line, col: pos.col, path: '', message: `invalid YAML: ${e.message.split('\n')[0]}` });
  }
  if (issues.length) throw new ConfigError(issues);

  // ${VAR} substitution on scalars, before validation, so that errors keep their lines.
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      node.value = node.value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
        const v = env[name];
        if (v === undefined) {
          const pos = lineCounter.linePos(node.range?.[0] ?? 0);
          issues.push({ file, line: pos.line, col: pos.col, path: '', message: `environment variable ${name} is not set (referenced as \${${name}})` });
          return '';
        }
        return v;
      });
    },
  });
  if (issues.length) throw new ConfigError(issues);

  const raw: unknown = doc.toJS() ?? {};
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => source.issue(i.path as ConfigPath, i.message)));
  }
  return { config: result.data, source };
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): { config: Config; source: ConfigSource } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError([{ file, line: 0, col: 0, path: '', message: `cannot read configuration file: ${e.code ?? e.message}` }]);
  }
  return parseConfig(text, file, env);
}

function makeSource(file: string, doc: Document, lineCounter: LineCounter): ConfigSource {
  return {
    file,
    baseDir: dirname(resolve(file)),
    issue(path, message) {
      // The deepest node that exists: a missing key is reported at its parent.
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n) as unknown[], true);
        const range = node && typeof node === 'object' && 'range' in node ? (node as { range?: [number, number, number] }).range : undefined;
        if (range) {
          const pos = lineCounter.linePos(range[0]);
          return { file, line: pos.line, col: pos.col, path: formatPath(path), message };
        }
        if (n === 0) break;
      }
      return { file, line: 1, col: 1, path: formatPath(path), message };
    },
  };
}


