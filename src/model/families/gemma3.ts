import { decoderFamily } from './decoder.js';
import { gemma2Family } from './gemma2.js';

/**
 * Gemma 3 (text): Gemma 2's blocks without soft-capped attention, with a per-head q/k RMSNorm, and
 * sliding-window layers (all but every `sliding_window_pattern`-th) that have a RoPE of their own
 * (`rope_local_base_freq`, or `rope_parameters.sliding_attention`).
 */
export const gemma3Family = decoderFamily({
  modelTypes: ['gemma3_text'],
  architecture: 'Gemma3ForCausalLM',
  traits: { ...gemma2Family.traits, qkNorm: true },
  config: {
    defaults: {
      ...gemma2Family.config.defaults,
      max_position_embeddings: 131072,
      rope_theta: 1e6,
      rope_local_base_freq: 10000,
      final_logit_softcapping: null,
      attn_logit_softcapping: null,
      sliding_window_pattern: 6,
    },
    reads: [
      ...gemma2Family.config.reads.filter((k) => k !== 'attn_logit_softcapping'),
      'sliding_window_pattern',
      'rope_local_base_freq',
    ],
    // _sliding_window_pattern is what transformers 5 writes beside layer_types; it reads neither back.
    ignores: ['hidden_act', '_sliding_window_pattern'],
    requires: {
      ...gemma2Family.config.requires,
      attn_logit_softcapping: { allowed: [null], why: "transformers' Gemma 3 does not apply it either" },
    },
    sliding: { fullEvery: 6 },
    ropePerLayerType: true,
  },
});
