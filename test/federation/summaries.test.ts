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

test('clients are named after their silo folders: valid kit ids, unique', async () => {
  const { clientNames } = await import('../../src/launcher/run-folder.js');
  expect(clientNames(['/data/silo-a', '/other/silo-a/', '/x/weird name!', '/y/server', '/z/__'])).toEqual([
    'silo-a',
    'silo-a-2',
    'weird-name-',
    'client-3',
    'client-4',
  ]);
});

test('progress lines carry elapsed time and an ETA from the pace so far', async () => {
  const { Progress, duration } = await import('../../src/report/progress.js');
  expect([duration(5.2), duration(125), duration(3720)]).toEqual(['5s', '2m05s', '1h02m']);
  const lines: string[] = [];
  const stream = {
    isTTY: false,
    write: (s: string) => {
      lines.push(s);
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  const p = new Progress('train', 10, stream);
  p.update(10, { loss: 1.5 });
  expect(lines[0]).toMatch(/^train █+ 10\/10 {2}loss 1\.5000 {2}\d+s\n$/);
  const q = new Progress('train', 10, stream);
  q.update(0, {});
  q.update(5, {});
  expect(lines.length).toBe(2); // not a TTY: a line at most every 5 s until the end
  expect(lines[1]).toMatch(/0\/10 {2} {2}0s\n$/);
});
