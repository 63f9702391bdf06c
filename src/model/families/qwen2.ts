import { decoderFamily } from './decoder.js';
import { LLAMA_TRAITS } from './llama.js';

/** Qwen2 / Qwen2.5: the LLaMA decoder with biases on q/k/v (not o), optional sliding windows on the top layers. */
export const qwen2Family = decoderFamily({
  modelTypes: ['qwen2'],
  architecture: 'Qwen2ForCausalLM',
  traits: { ...LLAMA_TRAITS, attentionBias: 'qkv' },
  config: {
    defaults: {
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 32768,
      tie_word_embeddings: false,
      attention_bias: true,
      hidden_act: 'silu',
      use_sliding_window: false,
      sliding_window: 4096,
      max_window_layers: 28,
    },
    reads: ['attention_bias', 'hidden_act', 'use_sliding_window', 'sliding_window', 'max_window_layers', 'layer_types'],
    sliding: 'from-max-window-layers',
  },
});
