import { block, embed, lmHead } from '../llama.js';
import { headDim, type ModelConfig } from '../config.js';
import { LINEAR_NAMES, layerPrefix } from '../weights.js';
import type { FamilyTraits, HfConfigTable, ModelFamily } from './family.js';

/**
 * A family of the LLaMA-style decoder from its data alone: its traits (how its blocks differ) and
 * its config table. The forward is llama.ts's; the weights follow from the traits.
 */
export function decoderFamily(spec: {
  modelTypes: string[];
  architecture: string;
  traits: FamilyTraits;
  config: HfConfigTable;
}): ModelFamily {
  return {
    ...spec,
    paramShapes: (c) => decoderParamShapes(c, spec.traits),
    decode(ctx, input, span, cache) {
      let h = span.embeds ? embed(ctx, input) : input;
      for (let l = span.layers[0]; l < span.layers[1]; l++) h = block(ctx, l, h, cache?.(l));
      return h;
    },
    lmHead,
  };
}

/** Every weight of the decoder, in the order a reader meets them (the names transformers gives them). */
export function decoderParamShapes(c: ModelConfig, t: FamilyTraits): [string, number[]][] {
  const d = c.hidden_size,
    q = c.num_attention_heads * headDim(c),
    kv = c.num_key_value_heads * headDim(c),
    f = c.intermediate_size;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocab_size, d]]];
  const linear = (p: string, name: keyof typeof LINEAR_NAMES, shape: [number, number], bias = false) => {
    out.push([`${p}.${LINEAR_NAMES[name]}.weight`, shape]);
    if (bias) out.push([`${p}.${LINEAR_NAMES[name]}.bias`, [shape[1]]]);
  };
  const attnBias = c.attention_bias,
    mlpBias = c.mlp_bias === true;
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = layerPrefix(i);
    out.push([`${p}.input_layernorm.weight`, [d]]);
    if (t.qkNorm)
      out.push([`${p}.self_attn.q_norm.weight`, [headDim(c)]], [`${p}.self_attn.k_norm.weight`, [headDim(c)]]);
    if (t.projections === 'fused') linear(p, 'qkv', [d, q + 2 * kv], attnBias);
    else {
      linear(p, 'q', [d, q], attnBias);
      linear(p, 'k', [d, kv], attnBias);
      linear(p, 'v', [d, kv], attnBias);
    }
    linear(p, 'o', [q, d], attnBias && t.attentionBias === 'qkvo');
    out.push([`${p}.post_attention_layernorm.weight`, [d]]);
    if (t.sandwichNorms)
      out.push([`${p}.pre_feedforward_layernorm.weight`, [d]], [`${p}.post_feedforward_layernorm.weight`, [d]]);
    if (t.projections === 'fused') linear(p, 'gate_up', [d, 2 * f], mlpBias);
    else {
      linear(p, 'gate', [d, f], mlpBias);
      linear(p, 'up', [d, f], mlpBias);
    }
    linear(p, 'down', [f, d], mlpBias);
  }
  out.push(['model.norm.weight', [d]]);
  if (!c.tie_word_embeddings) out.push(['lm_head.weight', [d, c.vocab_size]]);
  return out;
}
