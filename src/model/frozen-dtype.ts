import { floatToHalf } from '../util/half.js';
import { quantize, type QuantBits, type QuantCompute } from './quantize.js';
import type { FinetuneMethod, ParamStore } from './weights.js';

/**
 * `model.frozen_dtype`: the precision frozen weights are held in while training with LoRA or prefix
 * tuning. Real checkpoints are stored in BF16 or F16, and widening them to float32 doubles their
 * memory (2 GB instead of 1 for Qwen2.5-0.5B) for weights that never change.
 *
 * - auto (default): weights stored as F16 or BF16 stay half precision, as float16 (onnxruntime-node
 *   has no bfloat16 tensors); F32 checkpoints stay float32.
 * - float32: every weight widened, as before (bit-exact BF16 values).
 * - float16: F32 checkpoints' frozen weights rounded to float16 too.
 * - int8, int4: quantized (quantize.ts), multiplied by ORT's quantized kernels (quantized-matmul.ts);
 *   LoRA or prefix tuning only, as full fine-tuning trains these weights.
 *
 * F16 is kept exactly. BF16 -> float16 is exact wherever |x| >= 2^-14 (6.1e-5, float16's normal
 * range: bfloat16 has 8 significant bits, float16 11); below it float16 is subnormal, with an
 * absolute error of at most 2^-25 (3e-8). A tensor with a value beyond float16's ±65504 stays float32.
 *
 * Only the blocks' linear weights (`*_proj.weight`, 72 % of Qwen2.5-0.5B's weights, 79 % of
 * SmolLM2-135M's) are eligible. The embedding stays float32: tied to the LM head, the chunked loss
 * reads the whole matrix at the step's peak (all activations alive), where a widened copy would cost
 * more than float16 saves; norms and biases are small.
 */
export const FROZEN_DTYPES = ['auto', 'float32', 'float16', 'int8', 'int4'] as const;
export type FrozenDtype = (typeof FROZEN_DTYPES)[number];

/** The bits a policy quantizes frozen weights to (null: not quantized). */
export function quantBitsOf(policy: FrozenDtype): QuantBits | null {
  return policy === 'int8' ? 8 : policy === 'int4' ? 4 : null;
}

/** The refusal of a quantized base with full fine-tuning, or null. */
export function quantizedBaseProblem(policy: FrozenDtype, method: FinetuneMethod): string | null {
  return quantBitsOf(policy) && method === 'full'
    ? `frozen_dtype ${policy} quantizes the base weights, which full fine-tuning trains; use finetune.method: lora or prefix, or frozen_dtype: auto`
    : null;
}

/** Quantize a store's frozen linear weights in place (a preset's initialised base; HF folders quantize as they are read). */
export function quantizeFrozen(
  store: ParamStore,
  method: FinetuneMethod,
  bits: QuantBits,
  compute: QuantCompute,
): void {
  for (const [name, p] of store)
    if (halfEligible(name, method) && p.data)
      store.set(name, { shape: p.shape, quant: quantize(p.data, p.shape, bits, compute) });
}

/** Whether a weight may be held in float16 under a fine-tuning method (frozen linear weights only). */
export function halfEligible(name: string, method: FinetuneMethod): boolean {
  return method !== 'full' && /_proj\.weight$/.test(name);
}

/** The stored dtypes a policy turns into float16 (null: none). */
export function halfFrom(policy: FrozenDtype): { fromF32: boolean } | null {
  return policy === 'auto' || policy === 'float16' ? { fromF32: policy === 'float16' } : null;
}

let bf16Table: Uint16Array | null = null;

/** bfloat16 bits -> float16 bits (round to nearest even; 0x7c00 | sign where float16 overflows). */
function bf16ToHalfTable(): Uint16Array {
  if (!bf16Table) {
    bf16Table = new Uint16Array(65536);
    const f = new Float32Array(1),
      u = new Uint32Array(f.buffer);
    for (let b = 0; b < 65536; b++) {
      u[0] = b << 16;
      bf16Table[b] = floatToHalf(f[0]);
    }
  }
  return bf16Table;
}

const isInfBits = (h: number) => (h & 0x7fff) === 0x7c00;

/** Little-endian tensor bytes as float16 bits; null if a finite value overflows float16. */
export function toHalfBits(raw: Uint8Array, dtype: 'F32' | 'F16' | 'BF16'): Uint16Array | null {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = raw.byteLength / (dtype === 'F32' ? 4 : 2);
  const out = new Uint16Array(n);
  if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
    return out;
  }
  if (dtype === 'BF16') {
    const table = bf16ToHalfTable();
    for (let i = 0; i < n; i++) {
      const b = dv.getUint16(2 * i, true);
      const h = table[b];
      if (isInfBits(h) && (b & 0x7fff) !== 0x7f80) return null; // finite in bf16, too large for float16
      out[i] = h;
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    const x = dv.getFloat32(4 * i, true);
    const h = floatToHalf(x);
    if (isInfBits(h) && Number.isFinite(x)) return null;
    out[i] = h;
  }
  return out;
}
