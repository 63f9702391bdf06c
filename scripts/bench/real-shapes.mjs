#!/usr/bin/env node
// `npm run bench -- real-shapes [--shapes smollm2-135m,qwen2.5-0.5b] [--clients 1,3] [--rounds 2]`
// Federated LoRA at real model shapes with random weights (flglm run: separate server and client
// processes, sequential mode, 8 x 128 tokens per step): seconds per step, tokens/s and the peak
// resident memory of the server and of each client, from their own summaries.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dist, runExperiment, writeResult } from './common.mjs';

const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : fallback; };
const SHAPES = {
  // HuggingFaceTB/SmolLM2-135M: 30 layers, d 576, 9 / 3 heads, MLP 1536, vocab 49,152, tied.
  'smollm2-135m': { model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, rms_norm_eps: 1e-5, rope_theta: 100000, max_position_embeddings: 2048, tie_word_embeddings: true, attention_bias: false },
  // Qwen/Qwen2.5-0.5B: 24 layers, d 896, 14 / 2 heads, MLP 4864, vocab 151,936, tied, q/k/v bias.
  'qwen2.5-0.5b': { model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 4096, tie_word_embeddings: true, attention_bias: true },
};
const shapes = arg('--shapes', 'smollm2-135m').split(',');
const clientCounts = arg('--clients', '1,3').split(',').map(Number);
const rounds = Number(arg('--rounds', '2'));

const { initParams } = await import(dist('model/params.js'));
const { exportHfFolder } = await import(dist('model/hf.js'));
const results = [];
for (const shape of shapes) {
  const config = SHAPES[shape];
  if (!config) throw new Error(`unknown shape ${shape}: ${Object.keys(SHAPES).join(', ')}`);
  const folder = mkdtempSync(join(tmpdir(), `flglm-${shape}-`));
  exportHfFolder(folder, config, initParams(config, 1), { dtype: 'BF16' });
  for (const clients of clientCounts) {
    const yaml = `name: ${shape}-${clients}\nseed: 1\nmodel: {hf_path: ${folder}}\nsplit: {head_blocks: 2, tail_blocks: 2}\n`
      + `finetune: {method: lora, lora: {rank: 8, alpha: 16, targets: [q, v]}}\noptimizer: {lr: 0.0002}\n`
      + `data: {task: classify, dataset: spam-assassin, partition: natural, batch_size: 8, seq_len: 128, max_examples: 64}\n`
      + `federation: {mode: sequential, clients: ${clients}, rounds: ${rounds}, local_steps: 2, min_clients: ${clients}, client_timeout_ms: 600000}\n`
      + `eval: {max_batches: 1}\nsecurity: {tls: false, payload_encryption: false}\n`;
    const out = mkdtempSync(join(tmpdir(), 'flglm-real-shapes-'));
    console.log(`${shape}, ${clients} client(s): ${rounds} rounds x 2 steps x ${clients}`);
    const { summary, metrics } = await runExperiment(yaml, out);
    const steps = metrics.filter((m) => m.type === 'step');
    // Steady state: skip each client's first step (program compilation), time the rest by the gaps.
    const times = steps.map((s) => s.time);
    const perStep = (times[times.length - 1] - times[clients]) / 1000 / Math.max(1, times.length - 1 - clients);
    results.push({ shape, clients, steps: steps.length, seconds_per_step: +perStep.toFixed(2), tokens_per_s: Math.round((8 * 128) / perStep), wall_s: +summary.wall_s.toFixed(1), peak_rss_mib: summary.peak_rss_mib });
    console.log(JSON.stringify(results[results.length - 1]));
    rmSync(out, { recursive: true, force: true });
  }
  rmSync(folder, { recursive: true, force: true });
}
writeResult('real-shapes', {
  command: `npm run bench -- real-shapes --shapes ${shapes.join(',')} --clients ${clientCounts.join(',')} --rounds ${rounds}`,
  setup: 'random weights in the real shapes, stored BF16 (widened to float32 in memory); LoRA r 8 on q, v; split 2 | rest | 2; 8 x 128 tokens per step; sequential mode; no TLS (loopback)',
  results,
});
