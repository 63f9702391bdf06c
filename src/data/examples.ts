import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, extname } from 'node:path';
import { UserError } from '../util/errors.js';

/** One training example: free text (task lm) or prompt + completion (task classify). */
export type Example = { text: string } | { prompt: string; completion: string };

export function isPromptExample(e: Example): e is { prompt: string; completion: string } {
  return 'prompt' in e;
}

function parseJsonl(file: string): Example[] {
  const out: Example[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new UserError(`${file}:${i + 1}: not valid JSON. Fix: one JSON object per line, {"text": ...} or {"prompt": ..., "completion": ...}`);
    }
    const o = obj as Record<string, unknown>;
    if (typeof o.prompt === 'string' && typeof o.completion === 'string') out.push({ prompt: o.prompt, completion: o.completion });
    else if (typeof o.text === 'string') out.push({ text: o.text });
    else throw new UserError(`${file}:${i + 1}: expected {"text": string} or {"prompt": string, "completion": string}`);
  });
  return out;
}

/** Read a silo folder: every .jsonl file (one example a line) and .txt file (one example a file). */
export function readSilo(dir: string): Example[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`data folder not found: ${dir}. Fix: create it with \`flglm data prepare\` or point to a folder of .jsonl/.txt files`);
  const files = readdirSync(dir).filter((f) => ['.jsonl', '.txt'].includes(extname(f))).sort();
  if (files.length === 0) throw new UserError(`data folder ${dir} has no .jsonl or .txt files`);
  const out: Example[] = [];
  for (const f of files) {
    const path = join(dir, f);
    if (extname(f) === '.jsonl') out.push(...parseJsonl(path));
    else out.push({ text: readFileSync(path, 'utf8') });
  }
  if (out.length === 0) throw new UserError(`data folder ${dir} has no examples`);
  return out;
}
