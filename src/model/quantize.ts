import type { TensorData } from '../graph/ir.js';

/**
 * Frozen linear weights held quantized (`model.frozen_dtype: int8 | int4`, QLoRA-style): the base
 * of a LoRA or prefix fine-tune never changes, so it can be stored and multiplied quantized.
 *
 * - int8: symmetric, one scale per output channel: W[k, n] = q[k, n] * scale[n], q in [-127, 127]
 *   ([-63, 63] for compute int8, see int8Range),
 *   kept [K, N] as DynamicQuantizeMatMul reads it.
 * - int4: symmetric, one scale per block of 32 along K of each output channel: W[k, n] =
 *   (u - 8) * scale[n, k / 32], u in [1, 15], packed two per byte (low nibble first) as
 *   [N, K / 32, 16]: the layout com.microsoft MatMulNBits reads (its default zero point is 8).
 *
 * `compute` says how a graph multiplies by it: int8 quantizes the activations too (per tensor to
 * uint8 in DynamicQuantizeMatMul; per block to int8 in MatMulNBits' accuracy level 4), which is
 * where the speed is; float multiplies the dequantized weight in float32, exactly what is stored.
 */
export type QuantBits = 8 | 4;
export type QuantCompute = 'int8' | 'float';
export const QUANT_COMPUTES = ['int8', 'float'] as const satisfies readonly QuantCompute[];
export const INT4_BLOCK = 32;
/**
 * int8 magnitudes: ±127 for compute float; ±63 (7 bits, ORT's `reduce_range`) for compute int8, as
 * AVX2 without VNNI multiplies uint8 x int8 pairs into saturating int16 sums (vpmaddubsw): with full
 * range weights one 128x96 product came out 25 % off on this AVX2 host, 0.36 % (activation
 * rounding) with ±63.
 */
const int8Range = (compute: QuantCompute) => (compute === 'int8' ? 63 : 127);

/** How a frozen base was quantized (checkpoints record it: the adapters trained on those values, a loaded one gets the same). */
export interface FrozenQuant {
  dtype: 'int8' | 'int4';
  compute: QuantCompute;
}

export interface QuantWeight {
  bits: QuantBits;
  compute: QuantCompute;
  /** int8: [K, N] int8; int4: [N, K / 32, 16] uint8. */
  q: TensorData;
  /** int8: [N]; int4: [N * K / 32] (n-major). */
  scales: TensorData;
}

/** W [K, N] (flglm's [in, out]) quantized. */
export function quantize(
  w: Float32Array,
  shape: readonly number[],
  bits: QuantBits,
  compute: QuantCompute,
): QuantWeight {
  const [k, n] = shape;
  if (bits === 8) return { bits, compute, ...int8(w, k, n, int8Range(compute)) };
  if (k % INT4_BLOCK !== 0)
    throw new Error(`int4 quantization needs the input size to be a multiple of ${INT4_BLOCK}, got [${shape}]`);
  return { bits, compute, ...int4(w, k, n) };
}

function int8(w: Float32Array, k: number, n: number, range: number): Pick<QuantWeight, 'q' | 'scales'> {
  const scales = new Float32Array(n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) scales[j] = Math.max(scales[j], Math.abs(w[i * n + j]));
  for (let j = 0; j < n; j++) scales[j] = scales[j] / range || 1;
  const q = new Int8Array(k * n);
  for (let i = 0; i < k; i++)
    for (let j = 0; j < n; j++) q[i * n + j] = Math.max(-range, Math.min(range, Math.round(w[i * n + j] / scales[j])));
  return { q: { dtype: 'int8', shape: [k, n], data: q }, scales: { dtype: 'float32', shape: [n], data: scales } };
}

function int4(w: Float32Array, k: number, n: number): Pick<QuantWeight, 'q' | 'scales'> {
  const blocks = k / INT4_BLOCK,
    bytes = INT4_BLOCK / 2;
  const scales = new Float32Array(n * blocks);
  const packed = new Uint8Array(n * blocks * bytes);
  for (let j = 0; j < n; j++)
    for (let b = 0; b < blocks; b++) {
      let max = 0;
      for (let t = 0; t < INT4_BLOCK; t++) max = Math.max(max, Math.abs(w[(b * INT4_BLOCK + t) * n + j]));
      const scale = Math.fround(max / 7) || 1;
      scales[j * blocks + b] = scale;
      for (let t = 0; t < INT4_BLOCK; t++) {
        const u = 8 + Math.max(-7, Math.min(7, Math.round(w[(b * INT4_BLOCK + t) * n + j] / scale)));
        packed[(j * blocks + b) * bytes + (t >> 1)] |= t & 1 ? u << 4 : u;
      }
    }
  return {
    q: { dtype: 'uint8', shape: [n, blocks, bytes], data: packed },
    scales: { dtype: 'float32', shape: [n * blocks], data: scales },
  };
}

/** The float32 W [K, N] a quantized weight stands for (what every kernel multiplies by, up to activation rounding). */
export function dequantize(qw: QuantWeight): Float32Array {
  const scales = qw.scales.data as Float32Array;
  if (qw.bits === 8) {
    const [k, n] = qw.q.shape;
    const q = qw.q.data as Int8Array;
    const w = new Float32Array(k * n);
    for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) w[i * n + j] = q[i * n + j] * scales[j];
    return w;
  }
  const [n, blocks, bytes] = qw.q.shape;
  const k = blocks * 2 * bytes;
  const packed = qw.q.data as Uint8Array;
  const w = new Float32Array(k * n);
  for (let j = 0; j < n; j++)
    for (let i = 0; i < k; i++) {
      const byte = packed[(j * blocks + (i >> 5)) * bytes + ((i & 31) >> 1)];
      w[i * n + j] = ((i & 1 ? byte >> 4 : byte & 15) - 8) * scales[j * blocks + (i >> 5)];
    }
  return w;
}

/** The weight's [K, N]. */
export function quantShape(qw: QuantWeight): number[] {
  return qw.bits === 8 ? [...qw.q.shape] : [qw.q.shape[1] * 2 * qw.q.shape[2], qw.q.shape[0]];
}

/** Bytes held (for reports): the quantized values and their scales. */
export function quantBytes(qw: QuantWeight): number {
  return qw.q.data.byteLength + qw.scales.data.byteLength;
}
