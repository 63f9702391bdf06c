import type { NamedTensor } from './safetensors.js';
import { float32Of, type StoredParam } from './weights.js';

// Hugging Face stores nn.Linear weights as [out, in]; flglm keeps [in, out] so MatMul needs no
// transpose: linear weights cross between the two layouts here.

function transposeArray<A extends Float32Array | Uint16Array>(a: A, r: number, c: number, out: A): A {
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
  return out;
}

export function transpose2d(t: NamedTensor): NamedTensor {
  const [r, c] = t.shape;
  return { shape: [c, r], data: transposeArray(t.data, r, c, new Float32Array(r * c)) };
}

export function transposeStored(t: StoredParam): StoredParam {
  const [r, c] = t.shape;
  if (t.quant) return transpose2d({ shape: t.shape, data: float32Of(t) }); // exported as its dequantized values
  return t.half ? { shape: [c, r], half: transposeArray(t.half, r, c, new Uint16Array(r * c)) } : transpose2d(t);
}
