/**
 * Reads gateway.yaml: YAML with line positions → `${VAR}` substitution →
 * zod validation. Every problem becomes a ConfigIssue that names the file,
 * line, column and key path, and says what was expected.
 */
import { readFileSync } from 'node:fs';
import { stampFile, type Stamps } from '../util/file-poll.js';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
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
    const out: ConfigIssue[] = [];
    for (const i of result.error.issues) {
      const path = i.path as ConfigPath;
      if (i.code === 'unrecognized_keys') {
        // One issue per key, placed on the key itself, saying which keys are allowed there.
        const allowed = keysAt(configSchema, path);
        for (const key of i.keys) {
          const at = keyPosition(doc, lineCounter, path, key);
          const issue = source.issue([...path, key], `unknown key "${key}"${allowed ? ` (expected one of: ${allowed.join(', ')})` : ''}`);
          out.push(at ? { ...issue, ...at } : issue);
        }
      } else if (i.code === 'invalid_type' && / received undefined$/.test(i.message)) {
        out.push(source.issue(path, `missing required key "${String(path.at(-1))}" (${i.message.replace(/^Invalid input: /, '').replace(/, received undefined$/, '')})`));
      } else {
        out.push(source.issue(path, i.message));
      }
    }
    out.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ConfigError(out);
  }
  return { config: result.data, source };
}

/** The line and column of `key` inside the mapping at `path`, if it is there. */
function keyPosition(doc: Document, lineCounter: LineCounter, path: ConfigPath, key: string): { line: number; col: number } | undefined {
  const node = path.length ? doc.getIn(path as unknown[], true) : doc.contents;
  if (!isMap(node)) return undefined;
  for (const pair of node.items) {
    const k = pair.key;
    if (isScalar(k) && String(k.value) === key && k.range) return lineCounter.linePos(k.range[0]);
  }
  return undefined;
}

interface SchemaDef {
  type: string;
  shape?: Record<string, unknown>;
  element?: unknown;
  valueType?: unknown;
  innerType?: unknown;
  in?: unknown;
  options?: unknown[];
}
const defOf = (s: unknown): SchemaDef | undefined => (s as { _zod?: { def?: SchemaDef } } | undefined)?._zod?.def;

/** The keys a strict object accepts at `path` of the schema (for "expected one of"), or undefined. */
export function keysAt(schema: unknown, path: ConfigPath): string[] | undefined {
  let def = defOf(schema);
  let i = 0;
  for (let guard = 0; def && guard < 64; guard++) {
    switch (def.type) {
      case 'optional':
      case 'default':
      case 'prefault':
      case 'nullable':
      case 'readonly':
        def = defOf(def.innerType);
        continue;
      case 'pipe':
        def = defOf(def.in);
        continue;
      case 'union': {
        const rest = path.slice(i);
        for (const o of def.options ?? []) {
          const found = keysAt(o, rest);
          if (found) return found;
        }
        return undefined;
      }
    }
    if (i === path.length) return def.type === 'object' && def.shape ? Object.keys(def.shape) : undefined;
    const step = path[i++];
    if (def.type === 'object') def = defOf(def.shape?.[String(step)]);
    else if (def.type === 'array') def = defOf(def.element);
    else if (def.type === 'record') def = defOf(def.valueType);
    else return undefined;
  }
  return undefined;
}

/** Reads and validates gateway.yaml; `stamps` receives its stamp, taken before the read (for the file watcher, util/file-poll.ts). */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env, stamps?: Stamps): { config: Config; source: ConfigSource } {
  stamps?.set(file, stampFile(file));
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


