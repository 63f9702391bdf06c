import type { LoraTarget } from '../weights.js';

/**
 * How a family's blocks differ from LLaMA's, as data: llama.ts's building blocks read these, so a
 * family that differs only here is a table, not code.
 */
export interface FamilyTraits {
  /** RMSNorm's scale: the weight (LLaMA), or 1 + the weight (Gemma stores its norms as offsets from 1). */
  norm: 'weight' | 'one-plus-weight';
  /** The embeddings are multiplied by sqrt(hidden_size) (Gemma). */
  embedScale: boolean;
  /** q/k/v and gate/up as separate projections, or fused into `qkv_proj` and `gate_up_proj` (Phi-3). */
  projections: 'split' | 'fused';
  /** A per-head RMSNorm of queries and keys before RoPE (`q_norm` / `k_norm`: Qwen3, Gemma 3). */
  qkNorm: boolean;
  /** Also a norm after attention and one after the MLP (`pre_/post_feedforward_layernorm`: Gemma 2 and 3). */
  sandwichNorms: boolean;
  /** The projections `attention_bias` gives a bias: q, k, v (Qwen2) or q, k, v, o (LLaMA and the rest). */
  attentionBias: 'qkv' | 'qkvo';
}

/** The linear projections of a block, by short name (also the LoRA targets the family has). */
export function linearTargets(t: FamilyTraits): LoraTarget[] {
  return t.projections === 'fused' ? ['qkv', 'o', 'gate_up', 'down'] : ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];
}
