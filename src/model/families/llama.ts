import { block, embed, lmHead } from '../llama.js';
import { headDim, type ModelConfig } from '../config.js';
import { layerPrefix } from '../weights.js';
import type { ModelFamily } from './family.js';

/** LLaMA (and the decoder every other family here starts from): src/model/llama.ts. */
export const llamaFamily: ModelFamily = {
  modelTypes: ['llama'],
  architecture: 'LlamaForCausalLM',
  hfDefaults: () => ({}),
  paramShapes: llamaParamShapes,
  decode(ctx, input, span, cache) {
    let h = span.embeds ? embed(ctx.weight, input) : input;
    for (let l = span.layers[0]; l < span.layers[1]; l++) h = block(ctx, l, h, cache?.(l));
    return h;
  },
  lmHead,
};

/** Every LLaMA weight (Qwen2's q/k/v biases when `attention_bias`), in the order a reader meets them. */
function llamaParamShapes(c: ModelConfig): [string, number[]][] {
  const d = c.hidden_size,
    q = c.num_attention_heads * headDim(c),
    kv = c.num_key_value_heads * headDim(c),
    f = c.intermediate_size;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocab_size, d]]];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = layerPrefix(i);
    out.push([`${p}.input_layernorm.weight`, [d]]);
    out.push([`${p}.self_attn.q_proj.weight`, [d, q]]);
    out.push([`${p}.self_attn.k_proj.weight`, [d, kv]]);
    out.push([`${p}.self_attn.v_proj.weight`, [d, kv]]);
    if (c.attention_bias) {
      out.push(
        [`${p}.self_attn.q_proj.bias`, [q]],
        [`${p}.self_attn.k_proj.bias`, [kv]],
        [`${p}.self_attn.v_proj.bias`, [kv]],
      );
    }
    out.push([`${p}.self_attn.o_proj.weight`, [q, d]]);
    out.push([`${p}.post_attention_layernorm.weight`, [d]]);
    out.push([`${p}.mlp.gate_proj.weight`, [d, f]]);
    out.push([`${p}.mlp.up_proj.weight`, [d, f]]);
    out.push([`${p}.mlp.down_proj.weight`, [f, d]]);
  }
  out.push(['model.norm.weight', [d]]);
  if (!c.tie_word_embeddings) out.push(['lm_head.weight', [d, c.vocab_size]]);
  return out;
}
