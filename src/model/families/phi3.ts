import { decoderFamily } from './decoder.js';
import { LLAMA_TRAITS } from './llama.js';

/**
 * Phi-3 / Phi-3.5 / Phi-4-mini: the LLaMA decoder with fused `qkv_proj` and `gate_up_proj`, LongRoPE
 * scaling (`su` and `yarn` in older files), a partial rotary dimension, optional sliding window.
 */
export const phi3Family = decoderFamily({
  modelTypes: ['phi3'],
  architecture: 'Phi3ForCausalLM',
  traits: { ...LLAMA_TRAITS, projections: 'fused' },
  config: {
    defaults: {
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      max_position_embeddings: 4096,
      original_max_position_embeddings: 4096,
      tie_word_embeddings: false,
      hidden_act: 'silu',
      sliding_window: null,
      partial_rotary_factor: 1,
    },
    reads: ['hidden_act', 'sliding_window', 'partial_rotary_factor', 'original_max_position_embeddings'],
    requires: {
      attention_bias: { allowed: [false], why: 'Phi-3 has no attention biases' },
      embd_pdrop: { allowed: [0], why: 'embedding dropout is not implemented' },
      resid_pdrop: { allowed: [0], why: 'residual dropout is not implemented' },
    },
    sliding: 'every-layer',
    ropeAliases: { su: 'longrope', yarn: 'longrope' },
  },
});
