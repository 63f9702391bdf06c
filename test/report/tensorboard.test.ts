import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TensorBoardSink } from '../../src/report/tensorboard.js';
import { crc32c, EventFileWriter } from '../../src/report/tfevents.js';
import { simulatedRecords } from '../helpers/run-records.js';
import { crc32cBitwise, readEvents, readRecords } from '../helpers/tfevents-reader.js';

const eventFile = (dir: string) =>
  join(
    dir,
    readdirSync(dir).find((f) => f.startsWith('events.out.tfevents.'))!,
  );

test('CRC-32C: the standard check value, and the writer agrees with a bitwise reader', () => {
  const nine = Buffer.from('123456789');
  expect(crc32c(nine)).toBe(0xe3069283);
  expect(crc32cBitwise(nine)).toBe(0xe3069283);
  const noise = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff));
  expect(crc32c(noise)).toBe(crc32cBitwise(noise));
});

test('an event file reads back: version first, scalars with their steps, text for the text plugin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-tb-'));
  const w = new EventFileWriter(dir);
  w.scalar('train/loss', 2.5, 7, 1000.25);
  w.scalar('skipped', NaN, 8);
  w.text('config', 'seed: 1', 0, 1001);
  w.close();
  const events = readEvents(w.path);
  expect(w.path).toMatch(/events\.out\.tfevents\.\d+\.[^/]+\.\d+$/);
  expect(events[0].fileVersion).toBe('brain.Event:2');
  expect(events.slice(1)).toEqual([
    { wallTime: 1000.25, step: 7, values: [{ tag: 'train/loss', simple: 2.5 }] },
    { wallTime: 1001, step: 0, values: [{ tag: 'config', plugin: 'text', strings: ['seed: 1'] }] },
  ]);
  // One flipped byte fails the data CRC.
  const bytes = readFileSync(w.path);
  bytes[bytes.length - 6] ^= 1;
  writeFileSync(w.path, bytes);
  expect(() => readRecords(w.path)).toThrow(/bad data CRC/);
});

test('tracking.tensorboard: one run per participant, per-round and per-step scalars, the config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-tb-'));
  const warnings: string[] = [];
  const sink = new TensorBoardSink(dir, (m) => warnings.push(m));
  sink.config('federation: {rounds: 3}');
  for (const r of simulatedRecords({ clients: 2, rounds: 3, steps: 2, secure: true })) sink.record(r);
  sink.close();
  expect(warnings).toEqual([]);
  expect(readdirSync(dir).sort()).toEqual(['client-0', 'client-1', 'server']);
  const server = readEvents(eventFile(join(dir, 'server')));
  const series = (events: typeof server, tag: string) =>
    events.flatMap((e) => e.values.filter((v) => v.tag === tag).map((v) => [e.step, v.simple ?? v.strings]));
  expect(series(server, 'config')).toEqual([[0, ['```yaml\nfederation: {rounds: 3}\n```']]]);
  expect(series(server, 'round/wall_s').map(([s]) => s)).toEqual([1, 2, 3]);
  expect(series(server, 'round/bytes_down_mib')).toEqual([
    [1, 4],
    [2, 4],
    [3, 4],
  ]);
  const masked = series(server, 'secure_aggregation/masked_s');
  expect(masked.map(([s]) => s)).toEqual([1, 2, 3]);
  expect(masked[0][1]).toBeCloseTo(0.03, 6);
  expect(series(server, 'eval/accuracy').map(([s]) => s)).toEqual([256, 512, 768]); // x = tokens federated
  const client = readEvents(eventFile(join(dir, 'client-1')));
  const loss = series(client, 'train/loss');
  expect(loss.map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6]);
  expect(loss[0][1]).toBeCloseTo(5 * Math.exp(-0.08) + 0.21, 5);
  expect(series(client, 'step_ms/wait_trunk_backward')[0][1]).toBeCloseTo(11, 5);
});

test('a failing writer is one warning, never a failed run', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'flglm-tb-')), 'not-a-dir');
  writeFileSync(file, '');
  const warnings: string[] = [];
  const sink = new TensorBoardSink(file, (m) => warnings.push(m));
  sink.config('x: 1');
  for (const r of simulatedRecords({ clients: 1, rounds: 2, steps: 1 })) sink.record(r);
  sink.close();
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(
    /^tracking\.tensorboard: cannot write to .*not-a-dir \(.*\); TensorBoard files stop here/,
  );
});
