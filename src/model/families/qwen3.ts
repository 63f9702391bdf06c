import { layerPrefix } from '../weights.js';
import { headDim } from '../config.js';
import { llamaFamily } from './llama.js';
import type { ModelFamily } from './family.js';

/**
 * Qwen3: the LLaMA decoder without q/k/v biases, with a per-head RMSNorm of queries and keys before
 * RoPE (`self_attn.q_norm` / `k_norm`, applied by llama.ts's attention where the weights exist), and
 * often a head_dim wider than hidden_size / heads.
 */
export const qwen3Family: ModelFamily = {
  ...llamaFamily,
  modelTypes: ['qwen3'],
  architecture: 'Qwen3ForCausalLM',
  hfDefaults: (hf) => ({ attention_bias: Boolean(hf.attention_bias ?? false) }),
  paramShapes(c) {
    return llamaFamily.paramShapes(c).flatMap(([name, shape]): [string, number[]][] => {
      const m = /^model\.layers\.(\d+)\.input_layernorm\.weight$/.exec(name);
      if (!m) return [[name, shape]];
      const p = layerPrefix(Number(m[1]));
      return [
        [name, shape],
        [`${p}.self_attn.q_norm.weight`, [headDim(c)]],
        [`${p}.self_attn.k_norm.weight`, [headDim(c)]],
      ];
    });
  },
};
