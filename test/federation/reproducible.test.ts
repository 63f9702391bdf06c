import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

// Same config and seed -> the same result, bit for bit: `flglm run` (server and clients as separate
// processes, mTLS, payload encryption, secure aggregation with a hidden aggregate) twice in lockstep
// mode. Every step waits for all clients and the server sums their part gradients in name order, so
// no arrival order or thread schedule reaches the numbers.
const CONFIG = `name: same-seed
seed: 7
baseline: none
model: {preset: tiny}
data: {task: classify, batch_size: 4, seq_len: 48, max_examples: 30}
federation: {mode: lockstep, clients: 2, rounds: 2, local_steps: 3}
privacy: {secure_aggregation: {enabled: true}, hide_aggregate: true}
eval: {max_batches: 2}
`;

/** Every step's loss by (round, step, client), and every evaluation, from a run's metrics. */
function outcome(dir: string) {
  const records = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const steps = records
    .filter((r) => r.type === 'step')
    .map((r) => `${String(r.round)}/${String(r.step)}/${String(r.client)}: ${String(r.loss)}`)
    .sort();
  const evals = records.filter((r) => r.type === 'eval').map((r) => [r.round, r.loss, r.accuracy]);
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as { eval: unknown };
  return { steps, evals, eval: summary.eval };
}

test('flglm run twice with one config and seed (lockstep, secure aggregation, hidden aggregate): identical losses and scores', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-same-seed-'));
  try {
    writeFileSync(join(dir, 'exp.yaml'), CONFIG);
    const runs = ['a', 'b'].map((name) => {
      const r = runCli(['run', join(dir, 'exp.yaml'), '--out', join(dir, name), '--quiet'], { timeoutMs: 240_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return outcome(join(dir, name));
    });
    expect(runs[0].steps).toHaveLength(12);
    expect(runs[1]).toEqual(runs[0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 480_000);
