import { UserError } from '../util/errors.js';

/** Decoder hyper-parameters, named as in Hugging Face `config.json` (read by hf-config.ts, both forms). */
export interface ModelConfig {
  model_type: string;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  /** RoPE base of the full-attention layers (of every layer unless `local_rope` says otherwise). */
  rope_theta: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  attention_bias: boolean;
  /** Per-head width when it is not hidden_size / num_attention_heads (Qwen3, Gemma). */
  head_dim?: number;
  // What follows is absent where the model does what LLaMA does.
  /** The MLP's gate activation (absent: silu, SwiGLU). Gemma's `hidden_activation` reads into it. */
  hidden_act?: Activation;
  /** Biases on gate/up/down (LLaMA's `mlp_bias`). */
  mlp_bias?: boolean;
  /** RoPE scaling of the full-attention layers. */
  rope_scaling?: RopeScaling;
  /** The sliding-window layers' own RoPE (Gemma 3: `rope_local_base_freq`, no scaling). */
  local_rope?: Rope;
  /** Fraction of each head that RoPE rotates (Phi-3's `partial_rotary_factor`); the rest passes through. */
  partial_rotary_factor?: number;
  /** Keys a sliding-window layer sees: the last `sliding_window` positions, itself included. */
  sliding_window?: number;
  /** Each layer's attention, present when some layer slides. */
  layer_types?: LayerType[];
  /** Attention scores are scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5 (Gemma). */
  query_pre_attn_scalar?: number;
  /** Attention scores become cap * tanh(scores / cap) before the mask (Gemma 2). */
  attn_logit_softcapping?: number;
  /** Logits become cap * tanh(logits / cap) (Gemma 2). */
  final_logit_softcapping?: number;
  /** The base's token ids, carried into exports (transformers' defaults can lie outside a small vocabulary). */
  bos_token_id?: TokenId;
  eos_token_id?: TokenId;
  pad_token_id?: TokenId;
}

export type TokenId = number | number[];

export type Activation = 'silu' | 'gelu_pytorch_tanh' | 'gelu';
export type LayerType = 'full_attention' | 'sliding_attention';

/**
 * RoPE scaling, normalised from either config form (transformers 5's `rope_parameters`, older
 * `rope_scaling` with `rope_type` or `type`). Derived values (yarn's and longrope's attention factor)
 * are resolved when the config is read, so rope.ts needs nothing else.
 */
export type RopeScaling =
  | { rope_type: 'linear'; factor: number }
  | {
      rope_type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    }
  | {
      rope_type: 'yarn';
      factor: number;
      original_max_position_embeddings: number;
      attention_factor: number;
      beta_fast: number;
      beta_slow: number;
      truncate: boolean;
    }
  | {
      rope_type: 'longrope';
      short_factor: number[];
      long_factor: number[];
      original_max_position_embeddings: number;
      attention_factor: number;
    };

export interface Rope {
  rope_theta: number;
  rope_scaling?: RopeScaling;
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

/** How many of each head's dimensions RoPE rotates (all unless `partial_rotary_factor`). */
export function rotaryDim(c: ModelConfig): number {
  return Math.floor(headDim(c) * (c.partial_rotary_factor ?? 1));
}

export function layerType(c: ModelConfig, layer: number): LayerType {
  return c.layer_types?.[layer] ?? 'full_attention';
}

/** The RoPE of one kind of layer. */
export function ropeOf(c: ModelConfig, type: LayerType): Rope {
  if (type === 'sliding_attention' && c.local_rope) return c.local_rope;
  return { rope_theta: c.rope_theta, ...(c.rope_scaling ? { rope_scaling: c.rope_scaling } : {}) };
}

/** The factor attention scores are scaled by. */
export function attentionScale(c: ModelConfig): number {
  return 1 / Math.sqrt(c.query_pre_attn_scalar ?? headDim(c));
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
  if (rotaryDim(c) % 2 !== 0 || rotaryDim(c) === 0)
    throw new UserError(`model: the rotary dimension ${rotaryDim(c)} of each head must be even and positive`);
  if (c.layer_types && c.layer_types.length !== c.num_hidden_layers)
    throw new UserError(
      `model: layer_types lists ${c.layer_types.length} layers, num_hidden_layers is ${c.num_hidden_layers}`,
    );
  if (c.layer_types?.includes('sliding_attention') && !(Number.isInteger(c.sliding_window) && c.sliding_window! > 0))
    throw new UserError('model: layer_types has sliding_attention layers but no positive sliding_window');
}

export function countParameters(c: ModelConfig): number {
  const d = c.hidden_size,
    q = c.num_attention_heads * headDim(c),
    kv = c.num_key_value_heads * headDim(c);
  const attn = d * q * 2 + d * kv * 2 + (c.attention_bias ? q + 2 * kv : 0);
  const block = attn + 3 * d * c.intermediate_size + 2 * d;
  return c.vocab_size * d * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * block + d;
}
