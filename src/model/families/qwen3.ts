import { decoderFamily } from './decoder.js';
import { LLAMA_TRAITS } from './llama.js';
import { qwen2Family } from './qwen2.js';

/**
 * Qwen3: the LLaMA decoder without q/k/v biases, with a per-head RMSNorm of queries and keys before
 * RoPE (`self_attn.q_norm` / `k_norm`), and often a head_dim wider than hidden_size / heads.
 */
export const qwen3Family = decoderFamily({
  modelTypes: ['qwen3'],
  architecture: 'Qwen3ForCausalLM',
  traits: { ...LLAMA_TRAITS, qkNorm: true },
  config: {
    ...qwen2Family.config,
    defaults: { ...qwen2Family.config.defaults, attention_bias: false, head_dim: 128 },
    reads: [...qwen2Family.config.reads, 'head_dim'],
  },
});
