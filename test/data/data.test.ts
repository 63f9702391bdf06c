import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partitionDocuments } from '../../src/data/partition.js';
import { readSilo } from '../../src/data/examples.js';
import { encodeExample, BatchStream } from '../../src/data/batches.js';
import { ByteTokenizer } from '../../src/data/tokenizer.js';
import { cleanEmail } from '../../src/data/corpora.js';
import { IGNORE_INDEX } from '../../src/model/partition.js';
import type { Document } from '../../src/data/corpora.js';

const docs: Document[] = [];
for (const [source, label, n] of [
  ['easy-ham-1', 'ham', 50],
  ['easy-ham-2', 'ham', 30],
  ['hard-ham-1', 'ham', 10],
  ['spam-1', 'spam', 20],
  ['spam-2', 'spam', 40],
] as const) {
  for (let i = 0; i < n; i++) docs.push({ text: `${source} ${i}`, label, source });
}

describe('partitioning', () => {
  test('natural: every source goes to one client, test is a stratified held-out share', () => {
    const { silos, test } = partitionDocuments(docs, 3, 'natural', 0.1, 1);
    const owners = new Map<string, Set<number>>();
    silos.forEach((s, c) =>
      s.forEach((d) => (owners.get(d.source) ?? owners.set(d.source, new Set()).get(d.source)!).add(c)),
    );
    for (const set of owners.values()) expect(set.size).toBe(1);
    expect(new Set(test.map((d) => d.source)).size).toBe(5);
    const seen = new Set([...silos.flat(), ...test]);
    expect(seen.size).toBe(docs.length);
  });

  test('iid deals evenly; dirichlet with small alpha skews labels', () => {
    const iid = partitionDocuments(docs, 3, 'iid', 0.1, 1).silos.map((s) => s.length);
    expect(Math.max(...iid) - Math.min(...iid)).toBeLessThanOrEqual(1);
    const skewed = partitionDocuments(docs, 3, 'dirichlet:0.1', 0.1, 1).silos;
    const spamShare = skewed
      .filter((s) => s.length > 0)
      .map((s) => s.filter((d) => d.label === 'spam').length / s.length);
    expect(Math.max(...spamShare) - Math.min(...spamShare)).toBeGreaterThan(0.3);
    expect(skewed.flat().length + partitionDocuments(docs, 3, 'dirichlet:0.1', 0.1, 1).test.length).toBe(docs.length);
  });

  test('the same seed gives the same silos', () => {
    expect(partitionDocuments(docs, 3, 'iid', 0.1, 7)).toEqual(partitionDocuments(docs, 3, 'iid', 0.1, 7));
  });
});

describe('silos and batches', () => {
  test('a malformed JSONL line names the file and line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flglm-silo-'));
    writeFileSync(join(dir, 'a.jsonl'), '{"text": "ok"}\n{"text": oops}\n');
    expect(() => readSilo(dir)).toThrow(`${join(dir, 'a.jsonl')}:2: not valid JSON`);
    writeFileSync(join(dir, 'a.jsonl'), '{"text": "ok"}\n{"prompt": 3}\n');
    expect(() => readSilo(dir)).toThrow(
      `${join(dir, 'a.jsonl')}:2: expected {"text": string} or {"prompt": string, "completion": string}`,
    );
  });

  test('.txt files and prompt/completion lines are read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flglm-silo-'));
    writeFileSync(join(dir, 'a.jsonl'), '{"prompt": "p", "completion": " c"}\n');
    writeFileSync(join(dir, 'b.txt'), 'free text');
    expect(readSilo(dir)).toEqual([
      { prompt: 'p', completion: ' c', at: `${join(dir, 'a.jsonl')}:1` },
      { text: 'free text', at: join(dir, 'b.txt') },
    ]);
    expect(() => readSilo(join(dir, 'missing'))).toThrow(/data folder not found/);
  });

  test('classify examples take loss only on the completion, even when the prompt is cut', () => {
    const tok = new ByteTokenizer();
    const { ids, labels } = encodeExample({ prompt: 'x'.repeat(500) + '\nlabel:', completion: ' spam' }, tok, 32);
    const labelled = labels.map((l, i) => [l, i] as const).filter(([l]) => l !== IGNORE_INDEX);
    expect(labelled.map(([l]) => l)).toEqual([...Buffer.from(' spam'), tok.eos]);
    expect(ids[0]).toBe(tok.bos);
    expect(Buffer.from(ids.slice(1, 8)).toString()).not.toContain('label'); // the prompt's start is cut, its end kept
  });

  test('batch streams are reproducible and cover every example each epoch', () => {
    const tok = new ByteTokenizer();
    const ex = Array.from({ length: 10 }, (_, i) => ({ text: `example ${i}` }));
    const a = new BatchStream(ex, tok, 5, 16, 3),
      b = new BatchStream(ex, tok, 5, 16, 3);
    const first = [a.next(), a.next()];
    expect(first[0].tokens.data).toEqual(b.next().tokens.data);
    const starts = first.flatMap((bt) =>
      Array.from({ length: 5 }, (_, r) =>
        tok.decode(Array.from(bt.tokens.data as BigInt64Array, (x) => Number(x)).slice(r * 16, r * 16 + 16)),
      ),
    );
    expect(new Set(starts).size).toBe(10);
  });

  test('email cleaning keeps the subject and body, drops headers and HTML', () => {
    const clean = cleanEmail('From: a@b\nSubject: Cheap pills\nX-Spam: yes\n\n<html><b>Buy</b> now&nbsp;!</html>\n');
    expect(clean).toBe('Subject: Cheap pills\nBuy now !');
  });
});

describe('long texts', () => {
  test('training windows cover the whole document; evaluation reads its start', () => {
    const tok = new ByteTokenizer();
    const text = Array.from({ length: 200 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    const start = encodeExample({ text }, tok, 16);
    expect(start.ids[0]).toBe(tok.bos);
    const stream = new BatchStream([{ text }], tok, 1, 16, 5);
    const firsts = new Set(Array.from({ length: 30 }, () => Number((stream.next().tokens.data as BigInt64Array)[0])));
    expect(firsts.size).toBeGreaterThan(5);
  });

  test('a stream restored from its saved state continues identically', () => {
    const tok = new ByteTokenizer();
    const ex = Array.from({ length: 7 }, (_, i) => ({ text: `example number ${i} `.repeat(5) }));
    const a = new BatchStream(ex, tok, 3, 16, 9);
    a.next();
    const saved = a.state();
    const b = new BatchStream(ex, tok, 3, 16, 1);
    b.restore(saved);
    for (let i = 0; i < 4; i++) expect(b.next().tokens.data).toEqual(a.next().tokens.data);
  });
});

describe('silo checks', () => {
  test('invalid UTF-8 is reported with file and line, never replaced', async () => {
    const { readSilo } = await import('../../src/data/examples.js');
    const dir = mkdtempSync(join(tmpdir(), 'flglm-silo-'));
    writeFileSync(
      join(dir, 'a.jsonl'),
      Buffer.concat([Buffer.from('{"text": "ok"}\n{"text": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]),
    );
    expect(() => readSilo(dir)).toThrow(`${join(dir, 'a.jsonl')}:2: not valid UTF-8`);
  });
  test('free text in a classify silo is an error naming where it is', async () => {
    const { readSilo, checkExamplesForTask } = await import('../../src/data/examples.js');
    const dir = mkdtempSync(join(tmpdir(), 'flglm-silo-'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.jsonl'), '{"prompt": "p", "completion": "spam"}\n');
    writeFileSync(join(dir, 'notes.txt'), 'just text');
    const examples = readSilo(dir);
    expect(() => checkExamplesForTask(examples, 'lm')).not.toThrow();
    expect(() => checkExamplesForTask(examples, 'classify')).toThrow(
      `${join(dir, 'notes.txt')}: free text in a classify silo`,
    );
  });
});

describe('task generate: email body -> subject line', () => {
  test('examples are the start of the body and its subject; titleless documents are left out; corpora without titles are refused', async () => {
    const { toExample, prepareExamples, GENERATE_BODY_CHARS, MAX_TITLE_CHARS } =
      await import('../../src/data/prepare.js');
    const { splitEmail } = await import('../../src/data/corpora.js');
    const { subject, body } = splitEmail('From: a@b\nSubject:  Re: lunch\n\nSee you at <b>noon</b>.\n');
    expect({ subject, body }).toEqual({ subject: 'Re: lunch', body: 'See you at noon .' });
    const e = toExample(
      { text: 'x', label: 'ham', source: 's', title: 'Re: lunch', body: 'b'.repeat(500) },
      'generate',
      2000,
    );
    expect(e).toEqual({ prompt: `${'b'.repeat(GENERATE_BODY_CHARS)}\nsubject:`, completion: ' Re: lunch' });
    const d = prepareExamples({
      dataset: 'spam-assassin',
      task: 'generate',
      clients: 3,
      partition: 'natural',
      testFraction: 0.1,
      seed: 1,
      maxExamples: 50,
    });
    for (const x of [...d.silos.flat(), ...d.test]) {
      expect('completion' in x && x.completion.length > 1 && x.completion.length <= MAX_TITLE_CHARS + 1).toBe(true);
      expect('prompt' in x && x.prompt.endsWith('\nsubject:') && !x.prompt.startsWith('Subject:')).toBe(true);
    }
    expect(() =>
      prepareExamples({ dataset: 'sotu', task: 'generate', clients: 2, partition: 'iid', testFraction: 0.1, seed: 1 }),
    ).toThrow(/sotu has no titles to generate.*spam-assassin/);
  });

  test('ROUGE-L F1 and exact match, by hand', async () => {
    const { rougeLF1, exactMatch, lcsLength, words } = await import('../../src/training/text-metrics.js');
    expect(words('Re: [ILUG] OSI-protocol!')).toEqual(['re', 'ilug', 'osi', 'protocol']);
    expect(lcsLength(['a', 'b', 'c', 'd'], ['b', 'x', 'd'])).toBe(2);
    // generated 4 words, reference 3, LCS 2: P = 1/2, R = 2/3, F1 = 2PR / (P + R) = 4/7.
    expect(rougeLF1('the cat sat down', 'a cat down')).toBeCloseTo(4 / 7, 12);
    expect(rougeLF1('Netscape 7 Review', 'netscape 7 review')).toBe(1);
    expect(rougeLF1('', 'x')).toBe(0);
    expect(rougeLF1('', '')).toBe(1);
    expect(exactMatch(' Netscape 7 Review', 'Netscape 7 Review ')).toBe(true);
    expect(exactMatch('netscape 7 review', 'Netscape 7 Review')).toBe(false);
  });
});
