import { mkdirSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { loadCorpus, type Document } from './corpora.js';
import { partitionDocuments } from './partition.js';
import type { Example } from './examples.js';

export interface PrepareOptions {
  dataset: 'spam-assassin' | 'sotu' | 'moby-dick';
  task: 'lm' | 'classify';
  clients: number;
  partition: string;
  testFraction: number;
  seed: number;
  maxExamples?: number | null;
  /** Characters of each document kept in a prompt (the model sees at most seq_len tokens anyway). */
  maxChars?: number;
}

export const LABEL_PROMPT = '\nlabel:';

export function toExample(d: Document, task: 'lm' | 'classify', maxChars: number): Example {
  const text = d.text.slice(0, maxChars);
  return task === 'classify' ? { prompt: text + LABEL_PROMPT, completion: ` ${d.label}` } : { text };
}

export interface PreparedData {
  silos: Example[][];
  test: Example[];
  sources: string[][];
}

export function prepareExamples(o: PrepareOptions): PreparedData {
  const docs = loadCorpus(o.dataset);
  const { silos, test } = partitionDocuments(docs, o.clients, o.partition, o.testFraction, o.seed);
  const cap = (xs: Document[]) => (o.maxExamples ? xs.slice(0, o.maxExamples) : xs);
  const conv = (xs: Document[]) => cap(xs).map((d) => toExample(d, o.task, o.maxChars ?? 2000));
  return { silos: silos.map(conv), test: conv(test), sources: silos.map((s) => [...new Set(s.map((d) => d.source))].sort()) };
}

/** Write `out/client-<i>/train.jsonl` per client and `out/test/test.jsonl`. */
export function writePreparedData(out: string, data: PreparedData, force = false): string[] {
  if (existsSync(out) && readdirSync(out).length > 0 && !force) throw new UserError(`output folder ${out} is not empty. Fix: choose another --out or pass --force`);
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
