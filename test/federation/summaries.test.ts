import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonLinesTail } from '../../src/launcher/summaries.js';

test('JsonLinesTail returns each complete record once, and waits for a half-written line', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'flglm-tail-')), 'm.jsonl');
  const tail = new JsonLinesTail(path);
  expect(tail.poll()).toEqual([]);
  writeFileSync(path, '{"a":1}\n{"a":2}\n{"a":');
  expect(tail.poll()).toEqual([{ a: 1 }, { a: 2 }]);
  expect(tail.poll()).toEqual([]);
  appendFileSync(path, '3}\n');
  expect(tail.poll()).toEqual([{ a: 3 }]);
  appendFileSync(path, 'not json\n{"a":4}\n');
  expect(tail.poll()).toEqual([{ a: 4 }]);
});
