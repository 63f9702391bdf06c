import type { Value } from '../ir.js';
import { scalarLike } from './core.js';
import { add, cast, mul, sub } from './elementwise.js';
import { concat, reshape, slice, unsqueeze } from './shape.js';

/** ONNX Runtime's contrib domain: its quantized CPU kernels live there. */
export const MS_DOMAIN = 'com.microsoft';

const outShape = (a: Value, n: number) => [...a.shape.slice(0, -1), n];

/**
 * a [..., K] @ (b [K, N] int8 * scale [N]): ORT's DynamicQuantizeMatMul quantizes `a` to uint8 per
 * tensor at every run and multiplies in integers (AVX-512 VNNI here), then scales.
 */
export function dynamicQuantizeMatMul(a: Value, b: Value, scale: Value): Value {
  if (b.dtype !== 'int8' || b.rank !== 2 || a.shape[a.rank - 1] !== b.shape[0])
    throw new Error(`dynamicQuantizeMatMul: ${a} @ ${b}`);
  return a.graph.addNode(
    'DynamicQuantizeMatMul',
    [a, b, scale],
    [{ dtype: 'float32', shape: outShape(a, b.shape[1]) }],
    {},
    MS_DOMAIN,
  )[0];
}

export interface NBitsShape {
  k: number;
  n: number;
  bits: 4 | 8;
  blockSize: number;
  /** 0: weights dequantized, float32 products; 4: `a` quantized to int8 per block too (faster). */
  accuracyLevel: 0 | 4;
}

/** a [..., K] @ W [K, N] with W block-quantized as MatMulNBits reads it (packed [N, K/block, block*bits/8]). */
export function matMulNBits(a: Value, packed: Value, scales: Value, s: NBitsShape): Value {
  if (packed.dtype !== 'uint8' || a.shape[a.rank - 1] !== s.k) throw new Error(`matMulNBits: ${a} @ ${packed}`);
  const attrs = {
    K: { type: 'int', value: s.k },
    N: { type: 'int', value: s.n },
    bits: { type: 'int', value: s.bits },
    block_size: { type: 'int', value: s.blockSize },
    accuracy_level: { type: 'int', value: s.accuracyLevel },
  } as const;
  const shape = outShape(a, s.n);
  return a.graph.addNode('MatMulNBits', [a, packed, scales], [{ dtype: 'float32', shape }], attrs, MS_DOMAIN)[0];
}

/** (x - 0) * scale along `axis` (standard DequantizeLinear, per-axis scales). */
export function dequantizeLinear(x: Value, scale: Value, axis: number): Value {
  const attrs = { axis: { type: 'int', value: axis } } as const;
  return x.graph.addNode('DequantizeLinear', [x, scale], [{ dtype: 'float32', shape: x.shape }], attrs)[0];
}

/**
 * The float32 Wᵀ [N, K] of a 4-bit MatMulNBits weight, with standard ops: each byte holds two
 * values (low nibble first), unsigned with the default zero point 8, one scale per block of K.
 */
export function unpackNBitsTransposed(packed: Value, scales: Value, s: NBitsShape): Value {
  if (s.bits !== 4) throw new Error(`unpackNBitsTransposed: ${s.bits} bits`);
  const [n, blocks, bytes] = packed.shape;
  const f = cast(packed, 'float32');
  const sixteenths = mul(f, scalarLike(f, 1 / 16));
  const hi = f.graph.addNode('Floor', [sixteenths], [{ dtype: 'float32', shape: f.shape }])[0];
  const lo = sub(f, mul(hi, scalarLike(f, 16)));
  const pairs = concat([unsqueeze(lo, [3]), unsqueeze(hi, [3])], 3); // [N, blocks, bytes, 2]
  const centred = add(reshape(pairs, [n, blocks, 2 * bytes]), scalarLike(f, -8));
  const w = reshape(mul(centred, reshape(scales, [n, blocks, 1])), [n, blocks * 2 * bytes]);
  return blocks * 2 * bytes === s.k ? w : slice(w, [0], [s.k], [1]);
}
