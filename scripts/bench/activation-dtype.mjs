#!/usr/bin/env node
// `npm run bench -- activation-dtype [--dtypes fp32,bf16,fp16] [--seeds 2]`
//
// What `transport.activation_dtype` costs and buys: h_A, h_B and their gradients at half the bytes.
// - Quality: the quickstart (relay, 3 natural silos, 156 steps) per dtype and seed, held-out accuracy.
// - Time: one round of the `modes` setup (sequential, 2 clients, `small`, 8 x 128, mTLS + payload
//   encryption) over a simulated WAN link (20 ms RTT, 100 Mbit/s per client), round 2 timed.
// Bytes per round come from the round records (both directions: activations, gradients and the
// round-end parameters, which stay float32).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { root, runExperiment, writeResult } from './common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const dtypes = arg('--dtypes', 'fp32,bf16,fp16').split(',');
const seeds = Number(arg('--seeds', '2'));
const quickstart = parse(readFileSync(join(root, 'configs', 'quickstart.yaml'), 'utf8'));

const rows = [];
for (const dtype of dtypes) {
  const accuracy = [];
  for (let seed = 0; seed < seeds; seed++) {
    const cfg = {
      ...quickstart,
      name: `dtype-${dtype}`,
      seed: 42 + seed,
      baseline: 'none',
      transport: { activation_dtype: dtype },
      eval: { ...quickstart.eval, every_rounds: quickstart.federation.rounds },
    };
    const out = mkdtempSync(join(tmpdir(), 'flglm-dtype-'));
    const { summary } = await runExperiment(stringify(cfg), out);
    accuracy.push(summary.eval?.accuracy ?? NaN);
    rmSync(out, { recursive: true, force: true });
    console.log(`${dtype} seed ${42 + seed}: accuracy ${accuracy.at(-1)}`);
  }
  const wanYaml = `name: dtype-wan\nseed: 1\nmodel: {preset: small}\ndata: {batch_size: 8, seq_len: 128, partition: iid, max_examples: 64}\nfederation: {mode: sequential, clients: 2, rounds: 2, local_steps: 4, min_clients: 2}\neval: {max_batches: 1}\nsecurity: {tls: true, payload_encryption: true}\ntransport: {activation_dtype: ${dtype}}\n`;
  const out = mkdtempSync(join(tmpdir(), 'flglm-dtype-'));
  const { metrics } = await runExperiment(wanYaml, out, { FLGLM_NET_DELAY_MS: '20', FLGLM_NET_MBPS: '100' });
  rmSync(out, { recursive: true, force: true });
  const r2 = metrics.find((m) => m.type === 'round' && m.round === 2);
  rows.push({
    dtype,
    accuracy,
    wan_round_s: r2.wall_s,
    mib_per_round: (r2.bytes_up + r2.bytes_down) / 2 ** 20,
    steps_per_round: r2.steps,
  });
  console.log(JSON.stringify(rows.at(-1)));
}
writeResult('activation-dtype', {
  command: `npm run bench -- activation-dtype --dtypes ${dtypes.join(',')} --seeds ${seeds}`,
  rows,
});
