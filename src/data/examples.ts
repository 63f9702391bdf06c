import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, extname } from 'node:path';
import { UserError } from '../util/errors.js';

/** What a federation trains for: language modelling, a label after a prompt, or free text after a prompt. */
export const TASKS = ['lm', 'classify', 'generate'] as const;
export type Task = (typeof TASKS)[number];

/** One training example: free text (task lm) or prompt + completion (tasks classify, generate). `at`: file:line it came from. */
export type Example = ({ text: string } | { prompt: string; completion: string }) & { at?: string };

export function isPromptExample(e: Example): e is { prompt: string; completion: string } {
  return 'prompt' in e;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A file's text; bytes that are not UTF-8 are an error naming the first bad line (never replaced silently). */
function readUtf8(file: string): string {
  const bytes = readFileSync(file);
  try {
    return UTF8.decode(bytes);
  } catch {
    let line = 1,
      start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i === bytes.length || bytes[i] === 0x0a) {
        try {
          UTF8.decode(bytes.subarray(start, i));
        } catch {
          break;
        }
        line++;
        start = i + 1;
      }
    }
    throw new UserError(
      `${file}:${line}: not valid UTF-8. Fix: re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)`,
    );
  }
}

function parseJsonl(file: string): Example[] {
  const out: Example[] = [];
  readUtf8(file)
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch {
        throw new UserError(
          `${file}:${i + 1}: not valid JSON. Fix: one JSON object per line, {"text": ...} or {"prompt": ..., "completion": ...}`,
        );
      }
      const o = obj as Record<string, unknown>;
      const at = `${file}:${i + 1}`;
      if (typeof o.prompt === 'string' && typeof o.completion === 'string')
        out.push({ prompt: o.prompt, completion: o.completion, at });
      else if (typeof o.text === 'string') out.push({ text: o.text, at });
      else
        throw new UserError(`${file}:${i + 1}: expected {"text": string} or {"prompt": string, "completion": string}`);
    });
  return out;
}

/** Read a silo folder: every .jsonl file (one example a line) and .txt file (one example a file). */
export function readSilo(dir: string): Example[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UserError(
      `data folder not found: ${dir}. Fix: create it with \`flglm data prepare\` or point to a folder of .jsonl/.txt files`,
    );
  const files = readdirSync(dir)
    .filter((f) => ['.jsonl', '.txt'].includes(extname(f)))
    .sort();
  if (files.length === 0) throw new UserError(`data folder ${dir} has no .jsonl or .txt files`);
  const out: Example[] = [];
  for (const f of files) {
    const path = join(dir, f);
    if (extname(f) === '.jsonl') out.push(...parseJsonl(path));
    else out.push({ text: readUtf8(path), at: path });
  }
  if (out.length === 0) throw new UserError(`data folder ${dir} has no examples`);
  return out;
}

/**
 * Examples that cannot serve the task, named by file and line: classify needs prompt/completion
 * pairs (a .txt file or a {"text"} line would silently become language-modelling text).
 */
export function checkExamplesForTask(examples: Example[], task: Task): void {
  if (task === 'lm') return;
  const bad = examples.find((e) => !isPromptExample(e));
  if (bad)
    throw new UserError(
      `${bad.at ?? 'an example'}: free text in a ${task} silo; ${task} needs {"prompt": ..., "completion": ...} lines in .jsonl files. Fix: convert it, or set data.task: lm`,
    );
}
