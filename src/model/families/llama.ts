import { decoderFamily } from './decoder.js';
import type { FamilyTraits } from './family.js';

/** LLaMA's blocks, the traits every other family here starts from. */
export const LLAMA_TRAITS: FamilyTraits = {
  norm: 'weight',
  embedScale: false,
  projections: 'split',
  qkNorm: false,
  sandwichNorms: false,
  attentionBias: 'qkvo',
};

/** LLaMA 1-3.x, SmolLM2, TinyLlama (Llama 3.1+: `llama3` rope scaling). */
export const llamaFamily = decoderFamily({
  modelTypes: ['llama'],
  architecture: 'LlamaForCausalLM',
  traits: LLAMA_TRAITS,
  config: {
    defaults: {
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 2048,
      tie_word_embeddings: false,
      attention_bias: false,
      mlp_bias: false,
      hidden_act: 'silu',
    },
    reads: ['head_dim', 'attention_bias', 'mlp_bias', 'hidden_act'],
    // pretraining_tp: transformers 5 no longer reads it (in 4.x, > 1 only split the projections' matmuls);
    // is_llama_config: what nanotron writes into SmolLM2's files, read by nothing.
    ignores: ['pretraining_tp', 'is_llama_config'],
    // nanotron's flag (SmolLM2's files say false): interleaved rotary pairs are not what transformers computes.
    requires: { rope_interleaved: { allowed: [false], why: 'interleaved RoPE is not implemented' } },
    sliding: 'never',
  },
});
