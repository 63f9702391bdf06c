import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

// `flglm run --attack`: the server process keeps the last steps' h_A of each client and each client
// process the truth of the same steps, paired by client and step; after training the attack runs
// with the head the server holds and its scores land in summary.json and attack.json.
test('flglm run --attack captures on both sides, announces it, and scores the inversion', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-attack-run-'));
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(
    cfg,
    'name: attack\nseed: 3\nmodel: {preset: tiny}\ndata: {task: classify, batch_size: 4, seq_len: 48, max_examples: 24}\nfederation: {mode: sequential, strategy: {name: fedavg}, clients: 2, rounds: 2, local_steps: 2, min_clients: 2}\neval: {max_batches: 1}\n',
  );
  const out = join(dir, 'run');
  const r = runCli(['run', cfg, '--out', out, '--quiet', '--attack', '--capture-steps', '3'], { timeoutMs: 180000 });
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(
    /inversion attack \(the global client parts of round 2 \(server checkpoint\) over the initial weights \(preset tiny, seed 3\)\): token accuracy \d\.\d{3}, ROUGE-L F1 \d\.\d{3} on \d+ positions/,
  );
  for (const side of ['server', 'clients']) {
    expect(readdirSync(join(out, 'capture', side)).sort()).toEqual(['client-0', 'client-1']);
    expect(
      readdirSync(join(out, 'capture', side, 'client-0'))
        .map((f) => f.replace(/\.\w+$/, ''))
        .sort(),
    ).toEqual(['r1-s2', 'r2-s1', 'r2-s2']);
  }
  expect(readFileSync(join(out, 'logs', 'server.log'), 'utf8')).toMatch(
    /PRIVACY WARNING: --capture keeps clients' activations/,
  );
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  expect(summary.attack.captured_steps).toBe(6);
  expect(summary.attack.token_accuracy).toBeGreaterThan(0);
  expect(existsSync(join(out, 'attack.json'))).toBe(true);
}, 200_000);
