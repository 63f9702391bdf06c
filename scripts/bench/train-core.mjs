// Tokens/s and MFU of flglm's forward+backward+AdamW step, against the MatMul peak measured in
// the same run, and the same step in PyTorch eager with the same thread count.
// Usage: npm run bench -- train-core [preset=small] [batch=8] [seq=256] [threads=2] [runs=5] [--python P1,P2]
// `preset` may also be JSON overriding a preset, e.g. '{"from":"small","hidden_size":320}'.
// PyTorch is measured at its best (torch-peer.mjs: every interpreter given, every OpenBLAS kernel
// the CPU allows; the fastest float32 MatMul wins), and MFU is reported against the machine's best
// GEMM (the faster of ORT's and that PyTorch's MatMul) as well as against ORT's own peak.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { dist, root, stats, writeResult } from './common.mjs';
import { torchSetups } from './torch-peer.mjs';

const pyAt = process.argv.indexOf('--python');
const pythons = pyAt > 0 ? process.argv[pyAt + 1].split(',') : [];
const positional = process.argv.slice(2).filter((a, i, all) => a !== '--python' && all[i - 1] !== '--python');
const [preset = 'small', batch = '8', seq = '256', threads = '2', runs = '5'] = positional;
const B = Number(batch),
  S = Number(seq),
  T = Number(threads),
  R = Number(runs);
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
  const a = g.input('a', 'float32', [n, n]),
    b = g.input('b', 'float32', [n, n]);
  g.output(op.matmul(a, b), 'c');
  const s = await CompiledGraph.create(g, { threads: T });
  const feeds = {
    a: tensor(
      'float32',
      [n, n],
      Float32Array.from({ length: n * n }, () => Math.random()),
    ),
    b: tensor(
      'float32',
      [n, n],
      Float32Array.from({ length: n * n }, () => Math.random()),
    ),
  };
  await s.run(feeds);
  const xs = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    xs.push((2 * n ** 3) / ((performance.now() - t0) / 1000) / 1e9);
  }
  await s.release();
  return Math.max(...xs);
}

// The peak is the best of two sizes, so MFU is not flattered by an unlucky small-matrix run.
async function matmulPeak() {
  return Math.max(await matmulPeakAt(1024), await matmulPeakAt(2048));
}

const c = preset.startsWith('{')
  ? (({ from = 'small', ...rest }) => ({ ...PRESETS[from], ...rest }))(JSON.parse(preset))
  : PRESETS[preset];
const N = countParameters(c);
const tokens = B * S;
// Model FLOPs per step: 6 N per token for the weights + 12 L d S per token for attention scores.
const flopsPerStep = 6 * N * tokens + 12 * c.num_hidden_layers * c.hidden_size * S * tokens;
const peak = await matmulPeak();

const store = initParams(c, 1);
const peft = { method: 'full', lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q'] }, prefix: { length: 4 } };
const model = new PartExecutor('full', c, { head_blocks: 1, tail_blocks: 1 }, peft, store, { threads: T });
const ids = tensor(
  'int64',
  [B, S],
  Array.from({ length: B * S }, (_, i) => (i * 7) % 256),
);
const labels = tensor(
  'int64',
  [B * S],
  Array.from({ length: B * S }, (_, i) => (i * 13) % 256),
);
const opt = new AdamW({
  name: 'adamw',
  lr: 1e-3,
  weight_decay: 0.01,
  betas: [0.9, 0.999],
  eps: 1e-8,
  momentum: 0,
  grad_clip: 1,
  grad_accum: 1,
});
const params = new Map([...store].map(([k, v]) => [k, v.data]));
await model.step(ids, labels);
const stepS = [],
  graphS = [],
  optS = [];
for (let i = 0; i < R; i++) {
  const t0 = performance.now();
  const r = await model.step(ids, labels);
  const t1 = performance.now();
  opt.apply(params, r.grads, 1e-3);
  const t2 = performance.now();
  stepS.push((t2 - t0) / 1000);
  graphS.push((t1 - t0) / 1000);
  optS.push((t2 - t1) / 1000);
}
const flglm = {
  step_s: stats(stepS),
  graph_s: stats(graphS),
  optimizer_s: stats(optS),
  tokens_per_s: tokens / stats(stepS).median,
  mfu: flopsPerStep / stats(stepS).median / 1e9 / peak,
};

// Every interpreter's step with its fastest kernel; the peer is the fastest step.
const found = torchSetups({ pythons, threads: T });
const tried = [];
for (const setup of found.setups) {
  const r = spawnSync(
    setup.python,
    [join(root, 'scripts/bench/torch_step.py'), JSON.stringify({ ...c, batch: B, seq: S, threads: T, runs: R })],
    { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(T), ...setup.env } },
  );
  if (r.status !== 0) {
    tried.push({ label: setup.label, error: (r.stderr || '').trim().split('\n').pop() });
    continue;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  const st = stats(out.step_s);
  tried.push({
    label: setup.label,
    version: out.torch,
    matmul_gflops: setup.matmul_gflops,
    step_s: st,
    tokens_per_s: tokens / st.median,
    mfu: flopsPerStep / st.median / 1e9 / peak,
  });
}
const ok = tried.filter((t) => t.step_s);
let torch = ok.length
  ? {
      available: true,
      ...ok.reduce((a, b) => (b.tokens_per_s > a.tokens_per_s ? b : a)),
      candidates: found.candidates,
      steps_tried: tried.map(({ label, tokens_per_s, error }) => ({
        label,
        tokens_per_s: tokens_per_s && Math.round(tokens_per_s),
        error,
      })),
    }
  : { available: false, note: found.note ?? `PyTorch failed: ${tried.map((t) => t.error).join('; ')}` };
// The fastest GEMM among the PyTorch setups counts towards the machine's best, even if its step was not the fastest.
const torchGemm = Math.max(0, ...found.setups.map((x) => x.matmul_gflops));
// The machine's best GEMM: ONNX Runtime's or PyTorch's, whichever is faster here.
const bestGemm = Math.max(peak, torchGemm);
flglm.mfu_best_gemm = flopsPerStep / stats(stepS).median / 1e9 / bestGemm;
if (torch.available) torch.mfu_best_gemm = flopsPerStep / torch.step_s.median / 1e9 / bestGemm;
const result = {
  command: `npm run bench -- train-core ${preset.startsWith('{') ? `'${preset}'` : preset} ${B} ${S} ${T} ${R}`,
  preset: preset.startsWith('{') ? JSON.parse(preset) : preset,
  parameters: N,
  batch: B,
  seq: S,
  threads: T,
  matmul_peak_gflops: peak,
  best_gemm_gflops: bestGemm,
  model_gflop_per_step: flopsPerStep / 1e9,
  flglm,
  torch,
  speedup_vs_torch: torch.available ? flglm.tokens_per_s / torch.tokens_per_s : null,
};
console.log(JSON.stringify(result, null, 2));
writeResult(
  preset.startsWith('{') ? 'train-core-custom' : preset === 'small' ? 'train-core' : `train-core-${preset}`,
  result,
);
await model.release();
