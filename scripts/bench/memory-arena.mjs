#!/usr/bin/env node
// `npm run bench -- memory-arena [--steps 5] [--order on,off] [--frozen auto,float32]`
//
// What `runtime.memory_arena: false` and `model.frozen_dtype` buy and cost at a real shape: a
// Qwen2.5-0.5B-shaped model (random weights, BF16 on disk), LoRA r 8 on q, v, 8 x 128 tokens, one
// `flglm train` process per setting (every frozen dtype x every arena setting), one after the other:
// steady-state seconds per step (gaps after the first two steps) and the process's peak resident
// set. Compare with the PyTorch rows of `real-shapes` (docs/benchmarks.md §7).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { centralizedSteps, dist, stats, writeResult } from './common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const steps = Number(arg('--steps', '5'));
const order = arg('--order', 'on,off').split(',');
const frozen = arg('--frozen', 'auto,float32').split(',');
const { exportHfFolder } = await import(dist('model/hf.js'));
const { initParams } = await import(dist('model/params.js'));
const config = {
  model_type: 'qwen2',
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  max_position_embeddings: 4096,
  tie_word_embeddings: true,
  attention_bias: true,
};
const folder = mkdtempSync(join(tmpdir(), 'flglm-arena-'));
exportHfFolder(folder, config, initParams(config, 1), { dtype: 'BF16' });
const rows = [];
for (const frozenDtype of frozen)
  for (const setting of order) {
    const { gaps, peak_rss_mib } = centralizedSteps(
      `name: arena\nseed: 1\nmodel: {hf_path: ${folder}, frozen_dtype: ${frozenDtype}}\nfinetune: {method: lora, lora: {rank: 8, alpha: 16, targets: [q, v]}}\noptimizer: {lr: 0.0002}\ndata: {task: lm, dataset: sotu, partition: iid, batch_size: 8, seq_len: 128, max_examples: 200}\neval: {max_batches: 1}\nruntime: {threads: 2, memory_arena: ${setting === 'on'}}\n`,
      steps,
    );
    const row = {
      frozen_dtype: frozenDtype,
      memory_arena: setting === 'on',
      seconds_per_step: +stats(gaps).median.toFixed(2),
      gaps_s: gaps.map((g) => +g.toFixed(2)),
      peak_rss_mib,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
rmSync(folder, { recursive: true, force: true });
writeResult('memory-arena', {
  command: `npm run bench -- memory-arena --steps ${steps} --order ${order.join(',')} --frozen ${frozen.join(',')}`,
  shape: 'qwen2.5-0.5b, LoRA r 8 on q, v, 8 x 128, one process, 2 threads',
  rows,
});
