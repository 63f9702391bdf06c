// Names and types of model weights: the leaf every model module shares.
import { halvesToFloats } from '../util/half.js';
import { dequantize, type QuantWeight } from './quantize.js';

/** A named fp32 tensor of model weights (layout [in, out] for linear layers, as MatMul wants). */
export interface Param {
  shape: number[];
  data: Float32Array;
  half?: undefined;
  quant?: undefined;
}
/**
 * A frozen weight kept as IEEE float16 bits (`model.frozen_dtype`, see frozen-dtype.ts): half the
 * memory, widened to float32 inside the graphs that use it. It has no `data`, so code that needs
 * float32 values must ask for them (`float32Of`) instead of reading 16-bit words as numbers.
 */
export interface HalfParam {
  shape: number[];
  half: Uint16Array;
  data?: undefined;
  quant?: undefined;
}
/** A frozen linear weight held quantized (`model.frozen_dtype: int8 | int4`, see quantize.ts). */
export interface QuantParam {
  shape: number[];
  quant: QuantWeight;
  data?: undefined;
  half?: undefined;
}
export type StoredParam = Param | HalfParam | QuantParam;
export type ParamStore = Map<string, StoredParam>;

/** A weight's values as float32: the stored array itself, or a widened copy of a float16 weight. */
export function float32Of(p: StoredParam): Float32Array {
  return p.data ?? (p.half ? halvesToFloats(p.half) : dequantize(p.quant));
}

/** A private float32 copy of a weight's values (a float16 one widened). */
export function float32Copy(p: StoredParam): Float32Array {
  return p.data ? p.data.slice() : float32Of(p);
}

/** A weight as float32 (a float16 one widened into a new Param). */
export function asFloat32(p: StoredParam): Param {
  return p.data ? p : { shape: p.shape, data: float32Of(p) };
}

/** A private copy of a stored weight, in the precision it is stored in. */
export function copyParam(p: StoredParam): StoredParam {
  if (p.quant) {
    const copy = (t: QuantWeight['q']) => ({ ...t, shape: [...t.shape], data: t.data.slice() });
    return { shape: [...p.shape], quant: { ...p.quant, q: copy(p.quant.q), scales: copy(p.quant.scales) } };
  }
  return p.half ? { shape: [...p.shape], half: p.half.slice() } : { shape: [...p.shape], data: p.data.slice() };
}

/** The arrays a stored weight holds (to hand them to a worker thread). */
export function paramArrays(p: StoredParam): ArrayBufferView[] {
  return p.quant ? [p.quant.q.data, p.quant.scales.data] : [p.data ?? p.half];
}

/** The float32 array a trainable weight is updated in place through (a float16 weight never trains). */
export function trainableData(p: StoredParam, name: string): Float32Array {
  if (!p.data)
    throw new Error(
      `${name} is held in ${p.half ? 'float16' : 'int' + p.quant.bits} as a frozen weight, but it trains`,
    );
  return p.data;
}

export type FinetuneMethod = 'full' | 'lora' | 'prefix';
/** A linear projection of a block, by its short name (`qkv` and `gate_up` are Phi-3's fused ones). */
export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down' | 'qkv' | 'gate_up';

export interface PeftConfig {
  method: FinetuneMethod;
  lora: { rank: number; alpha: number; dropout: number; targets: LoraTarget[] };
  prefix: { length: number };
}

export const layerPrefix = (i: number) => `model.layers.${i}`;

export const LINEAR_NAMES: Record<LoraTarget, string> = {
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj',
  up: 'mlp.up_proj',
  down: 'mlp.down_proj',
  qkv: 'self_attn.qkv_proj',
  gate_up: 'mlp.gate_up_proj',
};
