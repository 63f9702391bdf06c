// TensorBoard's own reader on flglm's event files: writes a small run with the compiled
// TensorBoardSink, reads it back with EventAccumulator (read_events.py), compares.
// Usage: node scripts/tensorboard/check.mjs [PYTHON]   (a python with `pip install tensorboard`;
// default: $FLGLM_TENSORBOARD_PYTHON or python3). Needs `npm run build` first.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { TensorBoardSink } = await import(join(here, '..', '..', 'dist', 'src', 'report', 'tensorboard.js'));
const python = process.argv[2] ?? process.env.FLGLM_TENSORBOARD_PYTHON ?? 'python3';

const dir = mkdtempSync(join(tmpdir(), 'flglm-tb-check-'));
const sink = new TensorBoardSink(dir, (m) => {
  throw new Error(m);
});
sink.config('federation: {rounds: 2}');
const losses = [3.5, 3.25, 3, 2.75];
losses.forEach((loss, i) => sink.record({ type: 'step', client: 'alice', loss, time: 1e12 + i }));
for (const round of [1, 2])
  sink.record({
    type: 'round',
    round,
    wall_s: round * 1.5,
    train_loss: 3,
    tokens: 256,
    bytes_up: 2 ** 20,
    bytes_down: 2 ** 21,
  });
sink.record({ type: 'eval', tokens_seen: 512, loss: 2.5, accuracy: 0.75 });
sink.close();

const got = JSON.parse(execFileSync(python, [join(here, 'read_events.py'), dir], { encoding: 'utf8' }));
const expect = (what, a, b) => {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    console.error(`tensorboard check FAILED: ${what}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
    process.exit(1);
  }
};
expect('runs', Object.keys(got), ['alice', 'server']);
expect(
  'alice train/loss',
  got.alice.scalars['train/loss'],
  losses.map((l, i) => [i + 1, l]),
);
expect('server round/wall_s', got.server.scalars['round/wall_s'], [
  [1, 1.5],
  [2, 3],
]);
expect('server round/bytes_down_mib', got.server.scalars['round/bytes_down_mib'], [
  [1, 2],
  [2, 2],
]);
expect('server eval/accuracy', got.server.scalars['eval/accuracy'], [[512, 0.75]]);
expect('server config text', got.server.text.config, ['```yaml\nfederation: {rounds: 2}\n```']);
console.log(`tensorboard check passed: EventAccumulator read ${dir} (runs alice, server) as written`);
