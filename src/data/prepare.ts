import { mkdirSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { loadCorpus, type Document } from './corpora.js';
import { partitionDocuments } from './partition.js';
import type { Example, Task } from './examples.js';

export interface PrepareOptions {
  dataset: 'spam-assassin' | 'sotu' | 'moby-dick';
  task: Task;
  clients: number;
  partition: string;
  testFraction: number;
  seed: number;
  maxExamples?: number | null;
  /** Characters of each document kept in a prompt (the model sees at most seq_len tokens anyway). */
  maxChars?: number;
}

export const LABEL_PROMPT = '\nlabel:';
export const TITLE_PROMPT = '\nsubject:';
/** Task generate: titles longer than this are dropped (a few spam subjects are whole sentences). */
export const MAX_TITLE_CHARS = 80;
/**
 * Task generate: the start of the body the title is written from. A prompt longer than seq_len is
 * cut from the left, so a long body would lose its first lines, which say most about the subject.
 */
export const GENERATE_BODY_CHARS = 120;

export function toExample(d: Document, task: Task, maxChars: number): Example {
  if (task === 'generate')
    return {
      prompt: (d.body ?? d.text).slice(0, Math.min(maxChars, GENERATE_BODY_CHARS)) + TITLE_PROMPT,
      completion: ` ${d.title}`,
    };
  const text = d.text.slice(0, maxChars);
  return task === 'classify' ? { prompt: text + LABEL_PROMPT, completion: ` ${d.label}` } : { text };
}

/** Task generate needs a title per document: the documents that have a usable one. */
function titled(docs: Document[], dataset: string): Document[] {
  const ok = docs.filter((d) => d.title && d.title.length <= MAX_TITLE_CHARS);
  if (ok.length === 0)
    throw new UserError(
      `dataset ${dataset} has no titles to generate. Fix: use data.dataset: spam-assassin (email body -> subject line), or your own prompt/completion silos (data.silos)`,
    );
  return ok;
}

export interface PreparedData {
  silos: Example[][];
  test: Example[];
  sources: string[][];
}

export function prepareExamples(o: PrepareOptions): PreparedData {
  const docs = o.task === 'generate' ? titled(loadCorpus(o.dataset), o.dataset) : loadCorpus(o.dataset);
  const { silos, test } = partitionDocuments(docs, o.clients, o.partition, o.testFraction, o.seed);
  const cap = (xs: Document[]) => (o.maxExamples ? xs.slice(0, o.maxExamples) : xs);
  const conv = (xs: Document[]) => cap(xs).map((d) => toExample(d, o.task, o.maxChars ?? 2000));
  return {
    silos: silos.map(conv),
    test: conv(test),
    sources: silos.map((s) => [...new Set(s.map((d) => d.source))].sort()),
  };
}

/** Write `out/client-<i>/train.jsonl` per client and `out/test/test.jsonl`. */
export function writePreparedData(out: string, data: PreparedData, force = false): string[] {
  if (existsSync(out) && readdirSync(out).length > 0 && !force)
    throw new UserError(`output folder ${out} is not empty. Fix: choose another --out or pass --force`);
  mkdirSync(out, { recursive: true });
  const jsonl = (xs: Example[]) => xs.map((x) => JSON.stringify(x)).join('\n') + '\n';
  const dirs = data.silos.map((silo, i) => {
    const dir = join(out, `client-${i}`);
    writeFileAtomic(join(dir, 'train.jsonl'), jsonl(silo));
    return dir;
  });
  writeFileAtomic(join(out, 'test', 'test.jsonl'), jsonl(data.test));
  return dirs;
}
