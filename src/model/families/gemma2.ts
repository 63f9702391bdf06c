import { decoderFamily } from './decoder.js';
import { LLAMA_TRAITS } from './llama.js';

/**
 * Gemma 2: RMSNorm scaled by 1 + w, embeddings times sqrt(hidden_size), GeGLU (tanh GELU), norms
 * before and after attention and the MLP, attention scaled by query_pre_attn_scalar^-0.5, attention
 * scores and final logits soft-capped, sliding-window and full layers alternating.
 */
export const gemma2Family = decoderFamily({
  modelTypes: ['gemma2'],
  architecture: 'Gemma2ForCausalLM',
  traits: { ...LLAMA_TRAITS, norm: 'one-plus-weight', embedScale: true, sandwichNorms: true },
  config: {
    defaults: {
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 8192,
      tie_word_embeddings: true,
      attention_bias: false,
      head_dim: 256,
      hidden_activation: 'gelu_pytorch_tanh',
      query_pre_attn_scalar: 256,
      sliding_window: 4096,
      final_logit_softcapping: 30,
      attn_logit_softcapping: 50,
    },
    reads: [
      'head_dim',
      'attention_bias',
      'hidden_activation',
      'query_pre_attn_scalar',
      'sliding_window',
      'layer_types',
      'attn_logit_softcapping',
      'final_logit_softcapping',
    ],
    // transformers' Gemma 2 reads hidden_activation; configs carry hidden_act beside it unused.
    ignores: ['hidden_act'],
    requires: {
      use_bidirectional_attention: { allowed: [false, null], why: 'bidirectional attention is not implemented' },
    },
    sliding: { fullEvery: 2 },
  },
});
