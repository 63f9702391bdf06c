#!/usr/bin/env node
// `npm run bench -- quant-kernels [--m 512] [--k 896] [--n 4864] [--runs 10]`
//
// The products a quantized frozen base (model.frozen_dtype int8 | int4) is made of, at one linear
// layer of Qwen2.5-0.5B's MLP (x [M, K] @ W [K, N]) and its backward dX = dY [M, N] @ Wᵀ, 2 ORT
// threads, median of --runs after 2 warm-ups, each graph alone in its session:
// - forward: fp32 MatMul; int8 DynamicQuantizeMatMul; int8 by standard ops (DynamicQuantizeLinear +
//   MatMulInteger + scales); MatMulNBits 4-bit at accuracy level 4 (int8 activations) and 0 (float);
// - backward: fp32 Gemm (transB); int8 dequantized in the graph + Gemm (what flglm does); a transposed
//   int8 copy stored at import + DynamicQuantizeMatMul; 4-bit unpacked in the graph + MatMul.
import { dist, median, writeResult } from './common.mjs';

const { Graph } = await import(dist('graph/ir.js'));
const op = await import(dist('graph/ops.js'));
const { CompiledGraph } = await import(dist('runtime/session.js'));
const { quantize } = await import(dist('model/quantize.js'));

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const [M, K, N, runs] = [arg('--m', 512), arg('--k', 896), arg('--n', 4864), arg('--runs', 10)];
const rand = (n, s = 1) => Float32Array.from({ length: n }, () => (Math.random() - 0.5) * s);
const w = rand(K * N, 0.1);
const q8 = quantize(w, [K, N], 8, 'int8');
const q4 = quantize(w, [K, N], 4, 'int8');
const wT = new Float32Array(N * K);
for (let i = 0; i < K; i++) for (let j = 0; j < N; j++) wT[j * K + i] = w[i * N + j];
const q8T = quantize(wT, [N, K], 8, 'int8'); // per input channel of W: a different rounding than q8
const f32 = (shape, data) => ({ dtype: 'float32', shape, data });

async function time(name, build, feeds) {
  const g = new Graph(name);
  const inputs = Object.fromEntries(Object.entries(feeds).map(([n, t]) => [n, g.input(n, t.dtype, t.shape)]));
  g.output(build(inputs, g), 'y');
  const session = await CompiledGraph.create(g, { threads: 2 });
  const ms = [];
  for (let r = 0; r < runs + 2; r++) {
    const t0 = performance.now();
    await session.run(feeds);
    if (r >= 2) ms.push(performance.now() - t0);
  }
  await session.release();
  const m = +median(ms).toFixed(2);
  console.log(`${name}: ${m} ms`);
  return { name, median_ms: m, gflops: +((2 * M * K * N) / (m * 1e6)).toFixed(1) };
}

const x = f32([M, K], rand(M * K));
const dy = f32([M, N], rand(M * N));
const nbits = (level) => ({ k: K, n: N, bits: 4, blockSize: 32, accuracyLevel: level });
const forward = [
  await time('fp32 MatMul', (i) => op.matmul(i.x, i.w), { x, w: f32([K, N], w) }),
  await time('int8 DynamicQuantizeMatMul', (i) => op.dynamicQuantizeMatMul(i.x, i.q, i.s), {
    x,
    q: q8.q,
    s: q8.scales,
  }),
  await time(
    'int8 DynamicQuantizeLinear + MatMulInteger + scales',
    (i, g) => {
      const [xq, xs, xz] = g.addNode(
        'DynamicQuantizeLinear',
        [i.x],
        [
          { dtype: 'uint8', shape: [M, K] },
          { dtype: 'float32', shape: [] },
          { dtype: 'uint8', shape: [] },
        ],
      );
      const acc = g.addNode('MatMulInteger', [xq, i.q, xz], [{ dtype: 'int32', shape: [M, N] }])[0];
      return op.mul(op.mul(op.cast(acc, 'float32'), xs), i.s);
    },
    { x, q: q8.q, s: q8.scales },
  ),
  await time('int4 MatMulNBits, accuracy level 4', (i) => op.matMulNBits(i.x, i.q, i.s, nbits(4)), {
    x,
    q: q4.q,
    s: q4.scales,
  }),
  await time('int4 MatMulNBits, accuracy level 0', (i) => op.matMulNBits(i.x, i.q, i.s, nbits(0)), {
    x,
    q: q4.q,
    s: q4.scales,
  }),
];
const backward = [
  await time('fp32 Gemm transB', (i) => op.gemm(i.dy, i.w, null, { transB: true }), { dy, w: f32([K, N], w) }),
  await time(
    'int8 dequantized in the graph + Gemm transB (flglm)',
    (i) => op.gemm(i.dy, op.dequantizeLinear(i.q, i.s, 1), null, { transB: true }),
    { dy, q: q8.q, s: q8.scales },
  ),
  await time('int8 transposed copy + DynamicQuantizeMatMul', (i) => op.dynamicQuantizeMatMul(i.dy, i.q, i.s), {
    dy,
    q: q8T.q,
    s: q8T.scales,
  }),
  await time(
    'int4 unpacked in the graph + MatMul (flglm)',
    (i) => op.matmul(i.dy, op.unpackNBitsTransposed(i.q, i.s, nbits(0))),
    { dy, q: q4.q, s: q4.scales },
  ),
];
writeResult('quant-kernels', {
  shape: { M, K, N, threads: 2, runs },
  note: 'each graph alone in its session; medians; the host was shared with other sessions (load average in machine)',
  load_average: (await import('node:os')).loadavg(),
  forward,
  backward,
});
