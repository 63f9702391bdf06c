// Names and types of model weights: the leaf every model module shares.

/** A named fp32 tensor of model weights (layout [in, out] for linear layers, as MatMul wants). */
export interface Param {
  shape: number[];
  data: Float32Array;
}
export type ParamStore = Map<string, Param>;

export type FinetuneMethod = 'full' | 'lora' | 'prefix';
export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

export interface PeftConfig {
  method: FinetuneMethod;
  lora: { rank: number; alpha: number; dropout: number; targets: LoraTarget[] };
  prefix: { length: number };
}

export const layerPrefix = (i: number) => `model.layers.${i}`;

export const LINEAR_NAMES: Record<LoraTarget, string> = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
};
