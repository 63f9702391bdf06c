import type { Value } from '../../graph/ir.js';
import type { ModelConfig } from '../config.js';
import type { BlockContext, KvCache, LmHead } from '../llama.js';
import type { FamilyTraits } from './traits.js';

export type { FamilyTraits } from './traits.js';
export { linearTargets } from './traits.js';

/** Which layers of the decoder a graph runs, and from what. */
export interface DecoderSpan {
  /** The input is token ids: run the embedding first. Otherwise it is a part's input activations. */
  embeds: boolean;
  /** Blocks [from, to). */
  layers: readonly [number, number];
}

/** config.json keys a family may read beyond the ones every family reads (hf-config.ts says what each means). */
export type OptionalKey =
  | 'head_dim'
  | 'attention_bias'
  | 'mlp_bias'
  | 'hidden_act'
  | 'hidden_activation'
  | 'sliding_window'
  | 'use_sliding_window'
  | 'max_window_layers'
  | 'layer_types'
  | 'sliding_window_pattern'
  | 'rope_local_base_freq'
  | 'partial_rotary_factor'
  | 'original_max_position_embeddings'
  | 'query_pre_attn_scalar'
  | 'attn_logit_softcapping'
  | 'final_logit_softcapping';

/**
 * How a family's config.json reads (hf-config.ts): every key is read by a rule, known to change
 * nothing, or refused by name; transformers' own defaults fill the keys a file leaves out.
 */
export interface HfConfigTable {
  /** The values transformers' config class gives keys that config.json leaves out. */
  defaults: Readonly<Record<string, number | boolean | string | null>>;
  /** The optional keys this family reads (the math each changes is implemented). */
  reads: readonly OptionalKey[];
  /** Keys transformers' config class for this family has but its model does not use. */
  ignores?: readonly string[];
  /** Keys that must hold one of these values (anything else changes the math in a way flglm does not implement). */
  requires?: Readonly<Record<string, { allowed: readonly unknown[]; why: string }>>;
  /**
   * Which layers use the sliding window when config.json has no `layer_types`: none, every layer
   * (Mistral, Phi-3), those from `max_window_layers` on when `use_sliding_window` (Qwen2/3), or all
   * but every n-th (Gemma 2: n = 2; Gemma 3: `sliding_window_pattern`, default 6).
   */
  sliding: 'never' | 'every-layer' | 'from-max-window-layers' | { fullEvery: number };
  /** RoPE given per layer type (Gemma 3: `rope_parameters.full_attention` / `.sliding_attention`). */
  ropePerLayerType?: boolean;
  /** rope types this family reads as another (Phi-3 reads `su` and `yarn` as longrope). */
  ropeAliases?: Readonly<Record<string, string>>;
}

/**
 * A model family (selected by config.json's `model_type`): how its config reads, which weights it
 * has, and its forward. Training parts, evaluation and generation all build graphs through
 * `decode` and `lmHead`, so a new family is one file in this folder plus one registry line.
 */
export interface ModelFamily {
  /** Hugging Face `model_type` values this family reads. */
  readonly modelTypes: readonly string[];
  /** The `architectures` entry an exported config.json gets. */
  readonly architecture: string;
  readonly traits: FamilyTraits;
  readonly config: HfConfigTable;
  /** Every base weight's name and shape ([in, out] for linear layers), in the order a reader meets them. */
  paramShapes(c: ModelConfig): [string, number[]][];
  /** Embedding (when `span.embeds`) and blocks of `span`: [B, S] ids or [B, S, D] activations -> [B, S, D]. */
  decode(ctx: BlockContext, input: Value, span: DecoderSpan, cache?: (layer: number) => KvCache): Value;
  /** Final norm and LM head: [B, S, D] -> the normed rows [B*S, D] and the projection to the vocabulary. */
  lmHead(ctx: BlockContext, x: Value): LmHead;
}
