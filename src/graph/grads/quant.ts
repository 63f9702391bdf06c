import { registerGradient } from './registry.js';
import { input } from './util.js';
import * as op from '../ops.js';
import type { Value } from '../ir.js';
import { gateAfter } from '../widen.js';

// The quantized products of a frozen weight (model/quantized-matmul.ts): only the activation
// input trains, dX = dY Wᵀ with W dequantized in the graph. gateAfter makes the dequantization wait
// for dY, so its float32 copy lives for this one product (ORT would otherwise run a node of graph
// inputs only early in the forward, see widen.ts). Both rules are straight-through where the
// forward rounds the activations (compute int8): the gradient is that of x @ W.

const rowsOf = (x: Value) => (x.rank === 2 ? x : op.reshape(x, [-1, x.shape[x.rank - 1]]));

// a [..., K] @ (B [K, N] int8 * scale [N])
registerGradient('DynamicQuantizeMatMul', (n, [dy]) => {
  const [a, b, scale] = [input(n, 0), input(n, 1), input(n, 2)];
  return [
    () => {
      const w = op.dequantizeLinear(gateAfter(b, dy!), scale, 1);
      return op.reshape(op.gemm(rowsOf(dy!), w, null, { transB: true }), a.shape);
    },
    null,
    null,
  ];
});

// a [..., K] @ W, W 4-bit block-quantized [N, K / block, block / 2]
registerGradient('MatMulNBits', (n, [dy]) => {
  const [a, packed, scales] = [input(n, 0), input(n, 1), input(n, 2)];
  const s = {
    k: op.attrInt(n, 'K', 0),
    n: op.attrInt(n, 'N', 0),
    bits: op.attrInt(n, 'bits', 4) as 4,
    blockSize: op.attrInt(n, 'block_size', 32),
    accuracyLevel: 0 as const,
  };
  return [
    () => {
      const wt = op.unpackNBitsTransposed(gateAfter(packed, dy!), scales, s); // [N, K]
      return op.reshape(op.matmul(rowsOf(dy!), wt), a.shape);
    },
    null,
    null,
  ];
});
