// Tokens/s and MFU of flglm's forward+backward+AdamW step, against the MatMul peak measured in
// the same run, and the same step in PyTorch eager with the same thread count.
// Usage: npm run bench -- train-core [preset=small] [batch=8] [seq=256] [threads=2] [runs=5]
// `preset` may also be JSON overriding a preset, e.g. '{"from":"small","hidden_size":320}'.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { dist, root, stats, writeResult } from './common.mjs';

const [preset = 'small', batch = '8', seq = '256', threads = '2', runs = '5'] = process.argv.slice(2);
const B = Number(batch), S = Number(seq), T = Number(threads), R = Number(runs);
const { PRESETS, countParameters } = await import(dist('model/config.js'));
const { initParams } = await import(dist('model/params.js'));
const { PartExecutor } = await import(dist('training/part-executor.js'));
const { CompiledGraph } = await import(dist('runtime/session.js'));
const { Graph } = await import(dist('graph/ir.js'));
const op = await import(dist('graph/ops.js'));
const { tensor } = await import(dist('runtime/tensor.js'));
const { AdamW } = await import(dist('training/optimizer.js'));

async function matmulPeakAt(n) {
  const g = new Graph('peak');
  const a = g.input('a', 'float32', [n, n]), b = g.input('b', 'float32', [n, n]);
  g.output(op.matmul(a, b), 'c');
  const s = await CompiledGraph.create(g, { threads: T });
  const feeds = { a: tensor('float32', [n, n], Float32Array.from({ length: n * n }, () => Math.random())), b: tensor('float32', [n, n], Float32Array.from({ length: n * n }, () => Math.random())) };
  await s.run(feeds);
  const xs = [];
  for (let i = 0; i < 10; i++) { const t0 = performance.now(); await s.run(feeds); xs.push((2 * n ** 3) / ((performance.now() - t0) / 1000) / 1e9); }
  await s.release();
  return Math.max(...xs);
}

// The peak is the best of two sizes, so MFU is not flattered by an unlucky small-matrix run.
async function matmulPeak() {
  return Math.max(await matmulPeakAt(1024), await matmulPeakAt(2048));
}

const c = preset.startsWith('{') ? (({ from = 'small', ...rest }) => ({ ...PRESETS[from], ...rest }))(JSON.parse(preset)) : PRESETS[preset];
const N = countParameters(c);
const tokens = B * S;
// Model FLOPs per step: 6 N per token for the weights + 12 L d S per token for attention scores.
const flopsPerStep = 6 * N * tokens + 12 * c.num_hidden_layers * c.hidden_size * S * tokens;
const peak = await matmulPeak();

const store = initParams(c, 1);
const peft = { method: 'full', lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q'] }, prefix: { length: 4 } };
const model = new PartExecutor('full', c, { head_blocks: 1, tail_blocks: 1 }, peft, store, { threads: T });
const ids = tensor('int64', [B, S], Array.from({ length: B * S }, (_, i) => (i * 7) % 256));
const labels = tensor('int64', [B * S], Array.from({ length: B * S }, (_, i) => (i * 13) % 256));
const opt = new AdamW({ name: 'adamw', lr: 1e-3, weight_decay: 0.01, betas: [0.9, 0.999], eps: 1e-8, momentum: 0, grad_clip: 1, grad_accum: 1 });
const params = new Map([...store].map(([k, v]) => [k, v.data]));
await model.step(ids, labels);
const stepS = [], graphS = [], optS = [];
for (let i = 0; i < R; i++) {
  const t0 = performance.now();
  const r = await model.step(ids, labels);
  const t1 = performance.now();
  opt.apply(params, r.grads, 1e-3);
  const t2 = performance.now();
  stepS.push((t2 - t0) / 1000); graphS.push((t1 - t0) / 1000); optS.push((t2 - t1) / 1000);
}
const flglm = { step_s: stats(stepS), graph_s: stats(graphS), optimizer_s: stats(optS), tokens_per_s: tokens / stats(stepS).median, mfu: flopsPerStep / stats(stepS).median / 1e9 / peak };

let torch = { available: false, note: 'PyTorch not found: apt-get install python3-torch libopenblas0-pthread (Debian), then rerun' };
if (existsSync('/usr/bin/python3')) {
  const r = spawnSync('/usr/bin/python3', [join(root, 'scripts/bench/torch_step.py'), JSON.stringify({ ...c, batch: B, seq: S, threads: T, runs: R })], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(T) } });
  if (r.status === 0) {
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    const st = stats(out.step_s);
    torch = { available: true, version: out.torch, matmul_gflops: out.matmul_gflops, step_s: st, tokens_per_s: tokens / st.median, mfu: flopsPerStep / st.median / 1e9 / peak };
  } else torch.note += ` (python said: ${(r.stderr || '').trim().split('\n').pop()})`;
}
const result = {
  command: `npm run bench -- train-core ${preset.startsWith('{') ? `'${preset}'` : preset} ${B} ${S} ${T} ${R}`,
  preset: preset.startsWith('{') ? JSON.parse(preset) : preset, parameters: N, batch: B, seq: S, threads: T, matmul_peak_gflops: peak, model_gflop_per_step: flopsPerStep / 1e9,
  flglm, torch, speedup_vs_torch: torch.available ? flglm.tokens_per_s / torch.tokens_per_s : null,
};
console.log(JSON.stringify(result, null, 2));
writeResult(preset.startsWith('{') ? 'train-core-custom' : 'train-core', result);
await model.release();
