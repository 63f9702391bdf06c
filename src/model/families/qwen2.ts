import { llamaFamily } from './llama.js';
import type { ModelFamily } from './family.js';

/** Qwen2 / Qwen2.5: the LLaMA decoder with biases on the q/k/v projections (on unless config.json says otherwise). */
export const qwen2Family: ModelFamily = {
  ...llamaFamily,
  modelTypes: ['qwen2'],
  architecture: 'Qwen2ForCausalLM',
  hfDefaults: (hf) => ({ attention_bias: Boolean(hf.attention_bias ?? true) }),
};
