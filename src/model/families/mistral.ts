import { decoderFamily } from './decoder.js';
import { LLAMA_TRAITS } from './llama.js';

/** Mistral: the LLaMA decoder, every layer attending within `sliding_window` when it is set (4096 unless null). */
export const mistralFamily = decoderFamily({
  modelTypes: ['mistral'],
  architecture: 'MistralForCausalLM',
  traits: LLAMA_TRAITS,
  config: {
    defaults: {
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 131072,
      tie_word_embeddings: false,
      hidden_act: 'silu',
      sliding_window: 4096,
    },
    reads: ['head_dim', 'hidden_act', 'sliding_window'],
    sliding: 'every-layer',
  },
});
