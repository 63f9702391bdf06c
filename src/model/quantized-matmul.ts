import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { gateAfter, markLate } from '../graph/widen.js';
import { INT4_BLOCK, quantShape, type QuantWeight } from './quantize.js';

/**
 * x @ W for a frozen weight held quantized (quantize.ts), as graph nodes. The weight's tensors are
 * graph inputs (`name#q`, `name#scales`), fed from the store like every weight (graph-weights.ts).
 *
 * Forward (timings: docs/benchmarks.md §10; on an AVX2 host the dequantizing backward was slower than fp32):
 * - int8, compute int8: com.microsoft DynamicQuantizeMatMul (activations to uint8 per tensor).
 * - int4, compute int8: MatMulNBits with accuracy level 4 (activations to int8 per block of 32).
 * - int8, compute float: DequantizeLinear + MatMul; int4, compute float: MatMulNBits, level 0.
 * Backward (dX = dY Wᵀ, grads/quant.ts): the weight dequantized in the graph after dY exists, so
 * that no float32 copy outlives its one product.
 */
export interface QuantizedInputs {
  weight: QuantWeight;
  q: Value;
  scales: Value;
}

export function quantizedInputs(g: Graph, name: string, weight: QuantWeight): QuantizedInputs {
  return {
    weight,
    q: g.input(`${name}#q`, weight.q.dtype, weight.q.shape),
    scales: g.input(`${name}#scales`, 'float32', weight.scales.shape),
  };
}

export function quantizedTimes(x: Value, { weight, q, scales }: QuantizedInputs): Value {
  const [k, n] = quantShape(weight);
  if (weight.bits === 4) {
    const level = weight.compute === 'int8' ? 4 : 0;
    return op.matMulNBits(x, q, scales, { k, n, bits: 4, blockSize: INT4_BLOCK, accuracyLevel: level });
  }
  if (weight.compute === 'int8') return op.dynamicQuantizeMatMul(x, q, scales);
  // Dequantized for its product; the backward dequantizes it again (widen.ts) rather than keep this copy.
  const w = markLate(op.dequantizeLinear(q, scales, 1), (after) => op.dequantizeLinear(gateAfter(q, after), scales, 1));
  return op.matmul(x, w);
}
