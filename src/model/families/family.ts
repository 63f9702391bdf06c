import type { Value } from '../../graph/ir.js';
import type { ModelConfig } from '../config.js';
import type { BlockContext, KvCache, LmHead } from '../llama.js';

/** Which layers of the decoder a graph runs, and from what. */
export interface DecoderSpan {
  /** The input is token ids: run the embedding first. Otherwise it is a part's input activations. */
  embeds: boolean;
  /** Blocks [from, to). */
  layers: readonly [number, number];
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
  /** Values this family implies for config.json fields a checkpoint may leave out. */
  hfDefaults(hf: Record<string, unknown>): Partial<ModelConfig>;
  /** Every base weight's name and shape ([in, out] for linear layers), in the order a reader meets them. */
  paramShapes(c: ModelConfig): [string, number[]][];
  /** Embedding (when `span.embeds`) and blocks of `span`: [B, S] ids or [B, S, D] activations -> [B, S, D]. */
  decode(ctx: BlockContext, input: Value, span: DecoderSpan, cache?: (layer: number) => KvCache): Value;
  /** Final norm and LM head: [B, S, D] -> the normed rows [B*S, D] and the projection to the vocabulary. */
  lmHead(ctx: BlockContext, x: Value): LmHead;
}
