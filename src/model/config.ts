import { UserError } from '../util/errors.js';

/** Decoder hyper-parameters, named as in Hugging Face LLaMA/Qwen2/Mistral `config.json`. */
export interface ModelConfig {
  model_type: string;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  attention_bias: boolean;
  /** Per-head width when it is not hidden_size / num_attention_heads (Qwen3, Gemma). */
  head_dim?: number;
}

/** Byte-level vocabulary: 256 bytes + BOS, EOS, PAD. */
export const BYTE_VOCAB = 259;

const base = {
  model_type: 'llama',
  vocab_size: BYTE_VOCAB,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  attention_bias: false,
};

export const PRESETS: Record<'tiny' | 'small' | 'base', ModelConfig> = {
  // Trains in seconds; used by the tests.
  tiny: {
    ...base,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
  },
  // Quickstart size (~6.4M parameters).
  small: {
    ...base,
    hidden_size: 256,
    intermediate_size: 768,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    max_position_embeddings: 512,
  },
  // ~60M parameters.
  base: {
    ...base,
    hidden_size: 640,
    intermediate_size: 1728,
    num_hidden_layers: 12,
    num_attention_heads: 10,
    num_key_value_heads: 5,
    max_position_embeddings: 1024,
  },
};

export function headDim(c: ModelConfig): number {
  return c.head_dim ?? c.hidden_size / c.num_attention_heads;
}

export function validateModelConfig(c: ModelConfig): void {
  if (c.head_dim === undefined && c.hidden_size % c.num_attention_heads !== 0)
    throw new UserError(
      `model: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`,
    );
  if (c.num_attention_heads % c.num_key_value_heads !== 0)
    throw new UserError(
      `model: num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`,
    );
  if (headDim(c) % 2 !== 0)
    throw new UserError(`model: head dimension ${headDim(c)} must be even for rotary embeddings`);
}

export function countParameters(c: ModelConfig): number {
  const d = c.hidden_size,
    q = c.num_attention_heads * headDim(c),
    kv = c.num_key_value_heads * headDim(c);
  const attn = d * q * 2 + d * kv * 2 + (c.attention_bias ? q + 2 * kv : 0);
  const block = attn + 3 * d * c.intermediate_size + 2 * d;
  return c.vocab_size * d * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * block + d;
}
