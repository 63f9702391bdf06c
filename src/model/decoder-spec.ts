import { layerType, ropeOf, rotaryDim, type LayerType, type ModelConfig } from './config.js';
import { cacheSlots } from './positions.js';
import { ropeFrequencies } from './rope.js';
import type { PeftConfig } from './weights.js';

/**
 * decoder.json: what every input and output of an exported decoder step is (export-onnx.ts), enough
 * for any runtime to drive it (test/model/export.test.ts and families.test.ts do, with plain
 * onnxruntime-node). Where the model has sliding-window layers or a RoPE of their own, their inputs
 * are listed too.
 */
export function decoderSpec(c: ModelConfig, peft: PeftConfig, cacheLen: number): Record<string, unknown> {
  const rot = rotaryDim(c),
    prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const types = new Set<LayerType>(c.layer_types ?? ['full_attention']);
  const hkv = c.num_key_value_heads,
    dh = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  const ropeTable = (type: LayerType) => {
    const rope = ropeOf(c, type);
    const { inv, scale } = ropeFrequencies(rope, rot, 1);
    const s = rope.rope_scaling;
    return {
      inv_freq: inv,
      attention_factor: scale,
      ...(s?.rope_type === 'longrope'
        ? {
            long: {
              from_length: s.original_max_position_embeddings + 1,
              inv_freq: ropeFrequencies(rope, rot, s.original_max_position_embeddings + 1).inv,
              note: 'once the sequence (p + 1) is longer than from_length - 1, use these; at that step feed the whole sequence again from an empty cache with them, as transformers rebuilds its cache',
            },
          }
        : {}),
    };
  };
  const angles = (name: string) =>
    `float32 [1, ${rot / 2}]: cos (sin) of p * rope.${name}.inv_freq[i], times rope.${name}.attention_factor`;
  const local = types.has('sliding_attention') && c.local_rope !== undefined;
  const slots = (type: LayerType) => cacheSlots(c, type, cacheLen);
  return {
    cache_len: cacheLen,
    prefix_len: prefix,
    layers: c.num_hidden_layers,
    layer_types: Array.from({ length: c.num_hidden_layers }, (_, l) => layerType(c, l)),
    head_dim: dh,
    rotary_dim: rot,
    rope: { global: ropeTable('full_attention'), ...(local ? { local: ropeTable('sliding_attention') } : {}) },
    inputs: {
      token: 'int64 [1, 1]: the token at position p (0-based)',
      'cos, sin': angles('global'),
      ...(local ? { 'cos_local, sin_local': `${angles('local')} (the sliding-window layers)` } : {}),
      ...(types.has('full_attention')
        ? {
            mask: `float32 [1, ${prefix + slots('full_attention') + 1}]: full-attention layers: 0 where the token may attend, -1e9 elsewhere: the ${prefix} prefix slots and cache slots 0..p-1 are 0, slots p.. are -1e9, the last slot (the token itself) is 0`,
          }
        : {}),
      ...(types.has('sliding_attention')
        ? {
            mask_sliding: `float32 [1, ${prefix + slots('sliding_attention') + 1}]: sliding-window layers, whose cache is a ring of ${slots('sliding_attention')} slots (position q in slot q mod ${slots('sliding_attention')}): the prefix slots, the last slot and ring slots s < p are 0 except slot p mod ${slots('sliding_attention')} once p >= ${slots('sliding_attention')} (it holds a position outside the window); the rest -1e9`,
          }
        : {}),
      'past_key_<l>, past_value_<l>': `float32 [1, ${hkv}, slots, ${dh}] with slots ${slots('full_attention')} for full-attention layers${types.has('sliding_attention') ? `, ${slots('sliding_attention')} for sliding-window ones` : ''}: keys (after RoPE) and values of earlier positions in their slots (zeros elsewhere)`,
    },
    outputs: {
      logits: `float32 [1, ${c.vocab_size}]: next-token logits`,
      'key_<l>, value_<l>': `float32 [1, ${hkv}, 1, ${dh}]: this token's key and value: write them into position p's slot of layer l's cache`,
    },
  };
}
