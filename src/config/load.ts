import { readFileSync, existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode, stringify, type Document } from 'yaml';
import type { z } from 'zod';
import { experimentSchema, type ExperimentConfig } from './schema.js';
import { UserError } from '../util/errors.js';

export interface ConfigProblem {
  path: string;
  message: string;
  line?: number;
}

export type ConfigResult =
  /** `written`: the keys the text (and its overrides) set, before defaults. */
  { ok: true; config: ExperimentConfig; written: Record<string, unknown> } | { ok: false; problems: ConfigProblem[] };

/** Parse and validate YAML text; every problem carries its YAML path and, where known, its line. */
export function parseConfigText(text: string, overrides: readonly string[] = []): ConfigResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  for (const o of overrides) {
    const eq = o.indexOf('=');
    const key = eq > 0 ? o.slice(0, eq).trim() : '';
    if (!/^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$/.test(key))
      return {
        ok: false,
        problems: [
          { path: '--set', message: `expected KEY=VALUE with a dotted key (e.g. federation.rounds=8), got "${o}"` },
        ],
      };
    // The value is YAML, so numbers, booleans and lists keep their types: --set data.silos=[a,b].
    const value = parseDocument(o.slice(eq + 1)).toJS();
    if (doc.contents === null) (doc as { contents: unknown }).contents = doc.createNode({});
    doc.setIn(key.split('.'), doc.createNode(value));
  }
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({
        path: '(yaml)',
        message: `YAML syntax error: ${e.message.split('\n')[0]}`,
        line: e.linePos?.[0]?.line ?? lineCounter.linePos(e.pos[0]).line,
      })),
    };
  }
  const raw = doc.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, problems: [{ path: '(root)', message: 'expected a mapping of config keys', line: 1 }] };
  }
  const parsed = experimentSchema.safeParse(raw);
  if (parsed.success) return { ok: true, config: parsed.data, written: raw as Record<string, unknown> };
  return { ok: false, problems: parsed.error.issues.flatMap((i) => describeIssue(i, doc, lineCounter, raw)) };
}

export function loadConfigFile(path: string, overrides: readonly string[] = []): ExperimentConfig {
  if (!existsSync(path))
    throw new UserError(`config file not found: ${path}. Fix: check the path, or start from configs/quickstart.yaml`);
  const text = readFileSync(path, 'utf8');
  const result = parseConfigText(text, overrides);
  if (!result.ok) {
    const first = result.problems[0];
    const more =
      result.problems.length > 1
        ? ` (and ${result.problems.length - 1} more; run \`flglm config validate ${path}\`)`
        : '';
    throw new UserError(`${path}: ${formatProblem(first)}${more}`);
  }
  return resolveConfigPaths(result.config, dirname(resolve(path)), result.written);
}

/**
 * Paths written in a config file are relative to the file's folder, not to wherever the command
 * runs, so a config and the data beside it work from any directory. Defaults (output_dir: runs)
 * stay relative to the current directory.
 */
export function resolveConfigPaths(
  cfg: ExperimentConfig,
  base: string,
  written: Record<string, unknown> | null,
): ExperimentConfig {
  const at = (p: string | null) => (p && !isAbsolute(p) ? resolve(base, p) : p);
  return {
    ...cfg,
    ...(written?.output_dir !== undefined ? { output_dir: at(cfg.output_dir)! } : {}),
    model: { ...cfg.model, hf_path: at(cfg.model.hf_path) },
    data: { ...cfg.data, silos: cfg.data.silos ? cfg.data.silos.map((s) => at(s)!) : null, test: at(cfg.data.test) },
    security: { ...cfg.security, pki: at(cfg.security.pki) },
    tracking: { ...cfg.tracking, tensorboard: at(cfg.tracking.tensorboard) },
  };
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.path}: ${p.message}${p.line !== undefined ? ` (line ${p.line})` : ''}`;
}

export function configToYaml(config: ExperimentConfig): string {
  return stringify(config, { lineWidth: 0 });
}

function lineOf(doc: Document, lc: LineCounter, path: (string | number)[], keyNode = false): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const sub = path.slice(0, n);
    if (keyNode && n === path.length && sub.length > 0) {
      const parent = sub.length > 1 ? doc.getIn(sub.slice(0, -1), true) : doc.contents;
      const items = (parent as { items?: { key?: unknown }[] } | null)?.items;
      const pair = items?.find((it) => isNode(it.key) && (it.key as { value?: unknown }).value === sub[sub.length - 1]);
      if (pair && isNode(pair.key) && pair.key.range) return lc.linePos(pair.key.range[0]).line;
    }
    const node = sub.length === 0 ? doc.contents : doc.getIn(sub, true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let cur: unknown = raw;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

let defaults: unknown = null;

/** The keys a config may have at `path` (from the schema's fully defaulted config). */
function knownKeys(path: (string | number)[]): string[] {
  defaults ??= experimentSchema.parse({});
  const at = valueAt(defaults, path);
  return at && typeof at === 'object' && !Array.isArray(at) ? Object.keys(at) : [];
}

/** "did you mean ...? " for the closest known key within two edits, else nothing. */
function didYouMean(key: string, known: string[]): string {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length][b.length];
  };
  const best = known.map((k) => [k, dist(key.toLowerCase(), k)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 2 ? `did you mean "${best[0]}"? ` : '';
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'nothing' : JSON.stringify(v);
}

function describeIssue(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter, raw: unknown): ConfigProblem[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  const dotted = path.length ? path.join('.') : '(root)';
  const got = valueAt(raw, path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: [...path, key].join('.'),
        message: `unknown key "${key}"; ${didYouMean(key, knownKeys(path))}check its spelling against configs/reference.yaml`,
        line: lineOf(doc, lc, [...path, key], true),
      }));
    case 'invalid_value':
      return [
        {
          path: dotted,
          message: `expected ${issue.values.map(String).join('|')}, got ${show(got)}`,
          line: lineOf(doc, lc, path),
        },
      ];
    case 'invalid_type':
      return [{ path: dotted, message: `expected ${issue.expected}, got ${show(got)}`, line: lineOf(doc, lc, path) }];
    case 'too_small':
    case 'too_big': {
      const cmp = issue.code === 'too_small' ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
      const what = issue.origin === 'array' ? 'length ' : '';
      return [
        {
          path: dotted,
          message: `expected ${what}${cmp} ${String(issue.code === 'too_small' ? issue.minimum : issue.maximum)}, got ${show(got)}`,
          line: lineOf(doc, lc, path),
        },
      ];
    }
    case 'invalid_format':
      return [{ path: dotted, message: `${issue.message}, got ${show(got)}`, line: lineOf(doc, lc, path) }];
    default:
      return [{ path: dotted, message: issue.message, line: lineOf(doc, lc, path) }];
  }
}
