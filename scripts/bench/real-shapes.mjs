#!/usr/bin/env node
// `npm run bench -- real-shapes [--shapes smollm2-135m,qwen2.5-0.5b] [--clients 1,3] [--rounds 2]
//   [--local-steps 3] [--python PATH[,PATH]] [--torch-runs 3] [--no-torch] [--result real-shapes]`
// (--result: the name of the result file, e.g. a focused re-run beside the full one)
//
// LoRA fine-tuning at real model shapes with random weights, 8 x 128 tokens per step, next-token loss
// on every position, side by side in one run:
// - flglm centralized (`flglm train`, one process, the unsplit model);
// - flglm federated (`flglm run`: a server process and 1 or 3 client processes, sequential mode);
// - PyTorch on the same folder, in float32 (flglm's precision) and bfloat16, for every interpreter in
//   `--python` with its fastest BLAS kernel: transformers + PEFT (scripts/bench/torch_lora_step.py)
//   where it has them, else the same LoRA step in plain torch (torch_lora_plain.py).
// Seconds per step are steady state: flglm's from the gaps between step records after the first
// round (which compiles every program and pays ORT's first-run allocations), PyTorch's after one
// warm-up step. Peak memory is each process's own maximum resident set.
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { centralizedSteps, dist, median, root, runExperiment, stepGaps, writeResult } from './common.mjs';
import { torchSetups } from './torch-peer.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const SHAPES = {
  // HuggingFaceTB/SmolLM2-135M: 30 layers, d 576, 9 / 3 heads, MLP 1536, vocab 49,152, tied.
  'smollm2-135m': {
    model_type: 'llama',
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    rms_norm_eps: 1e-5,
    rope_theta: 100000,
    max_position_embeddings: 2048,
    tie_word_embeddings: true,
    attention_bias: false,
  },
  // Qwen/Qwen2.5-0.5B: 24 layers, d 896, 14 / 2 heads, MLP 4864, vocab 151,936, tied, q/k/v bias.
  'qwen2.5-0.5b': {
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
  },
};
const shapes = arg('--shapes', 'smollm2-135m,qwen2.5-0.5b').split(',');
const clientCounts = arg('--clients', '1,3').split(',').map(Number);
const rounds = Number(arg('--rounds', '2'));
const localSteps = Number(arg('--local-steps', '3'));
const python = arg('--python', process.env.FLGLM_TORCH_PYTHON ?? 'python3');
const torchRuns = Number(arg('--torch-runs', '3'));
const withTorch = !process.argv.includes('--no-torch');
const B = 8,
  S = 128;

const round2 = (x) => +x.toFixed(2);

function configYaml(folder, name, clients, evalEveryRounds = 1) {
  return (
    `name: ${name}\nseed: 1\nmodel: {hf_path: ${folder}}\nsplit: {head_blocks: 2, tail_blocks: 2}\n` +
    `finetune: {method: lora, lora: {rank: 8, alpha: 16, targets: [q, v]}}\noptimizer: {lr: 0.0002}\n` +
    `data: {task: lm, dataset: sotu, partition: iid, batch_size: ${B}, seq_len: ${S}, max_examples: 200}\n` +
    `federation: {mode: sequential, clients: ${clients}, rounds: ${rounds}, local_steps: ${localSteps}, min_clients: ${clients}, client_timeout_ms: 900000}\n` +
    `eval: {max_batches: 1, every_rounds: ${evalEveryRounds}}\nsecurity: {tls: false, payload_encryption: false}\nruntime: {threads: 2}\n`
  );
}

/**
 * flglm centralized: the unsplit model in one `flglm train` process. No evaluation between its steps:
 * `flglm train` evaluates every every_rounds x local_steps steps, and a gap with an evaluation in it
 * (compiling the eval program the first time) is not a step (runs before 2026-12-02 03:15 had them).
 */
function centralized(folder) {
  const { gaps, peak_rss_mib } = centralizedSteps(configYaml(folder, 'centralized', 1, 1000), localSteps * rounds + 1);
  return {
    impl: 'flglm centralized (one process)',
    seconds_per_step: round2(median(gaps)),
    tokens_per_s: Math.round((B * S) / median(gaps)),
    peak_rss_mib: { process: peak_rss_mib },
  };
}

/** flglm federated: server and client processes through the launcher. */
async function federated(folder, shape, clients) {
  const out = mkdtempSync(join(tmpdir(), 'flglm-real-shapes-'));
  const { summary, metrics } = await runExperiment(configYaml(folder, `${shape}-${clients}`, clients), out);
  rmSync(out, { recursive: true, force: true });
  const perStep = median(stepGaps(metrics));
  return {
    impl: `flglm federated, ${clients} client${clients > 1 ? 's' : ''} (server + client processes)`,
    clients,
    seconds_per_step: round2(perStep),
    tokens_per_s: Math.round((B * S) / perStep),
    wall_s: round2(summary.wall_s),
    peak_rss_mib: summary.peak_rss_mib,
  };
}

// Every PyTorch interpreter given, at its fastest kernel (torch-peer.mjs): transformers + PEFT where
// it has them, the same step in plain torch (torch_lora_plain.py) where it does not.
const setups = withTorch ? torchSetups({ pythons: python.split(','), threads: 2 }) : { setups: [] };

function torchStep(setup, folder, dtype) {
  const env = { ...process.env, TRANSFORMERS_VERBOSITY: 'error', HF_HUB_OFFLINE: '1', ...setup.env };
  const args = [folder, String(B), String(S), '2', String(torchRuns), dtype];
  let r = spawnSync(setup.python, [join(root, 'scripts', 'bench', 'torch_lora_step.py'), ...args], {
    encoding: 'utf8',
    env,
  });
  if (r.status !== 0 && /No module named '(transformers|peft)'/.test(r.stderr ?? ''))
    r = spawnSync(setup.python, [join(root, 'scripts', 'bench', 'torch_lora_plain.py'), ...args], {
      encoding: 'utf8',
      env,
    });
  const kernel = `${setup.blas}${setup.env.OPENBLAS_CORETYPE ? ` ${setup.env.OPENBLAS_CORETYPE}` : ''}, MatMul ${Math.round(setup.matmul_gflops)} GFLOP/s`;
  if (r.status !== 0)
    return {
      impl: `PyTorch ${setup.torch} (${dtype}; ${kernel})`,
      skipped: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop(),
    };
  const j = JSON.parse(r.stdout.trim().split('\n').pop());
  return {
    impl: `${j.impl}; ${kernel}`,
    seconds_per_step: round2(j.seconds_per_step),
    tokens_per_s: Math.round((B * S) / j.seconds_per_step),
    peak_rss_mib: { process: j.peak_rss_mib },
  };
}

const { initParams } = await import(dist('model/params.js'));
const { exportHfFolder } = await import(dist('model/hf.js'));
const results = [];
for (const shape of shapes) {
  const config = SHAPES[shape];
  if (!config) throw new Error(`unknown shape ${shape}: ${Object.keys(SHAPES).join(', ')}`);
  const folder = mkdtempSync(join(tmpdir(), `flglm-${shape}-`));
  exportHfFolder(folder, config, initParams(config, 1), { dtype: 'BF16' });
  const rows = [];
  const note = (row) => {
    rows.push(row);
    console.log(shape, JSON.stringify(row));
  };
  note(centralized(folder));
  for (const clients of clientCounts) note(await federated(folder, shape, clients));
  if (withTorch && !setups.setups.length) note({ impl: 'PyTorch', skipped: setups.note });
  for (const setup of setups.setups) for (const dtype of ['fp32', 'bf16']) note(torchStep(setup, folder, dtype));
  results.push({ shape, rows });
  rmSync(folder, { recursive: true, force: true });
}
const resultName = arg('--result', 'real-shapes');
writeResult(resultName, {
  command: `npm run bench -- real-shapes --shapes ${shapes.join(',')} --clients ${clientCounts.join(',')} --rounds ${rounds} --local-steps ${localSteps} --python ${python}${resultName === 'real-shapes' ? '' : ` --result ${resultName}`}`,
  setup: `random weights in the real shapes, stored BF16 (frozen linear weights float16 in flglm's memory, model.frozen_dtype: auto); LoRA r 8 on q, v; split 2 | rest | 2; ${B} x ${S} tokens per step, next-token loss on every position; sequential mode, no TLS (loopback); 2 threads everywhere`,
  results,
});
