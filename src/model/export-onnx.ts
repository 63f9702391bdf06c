import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { toOnnx } from '../graph/onnx.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { headDim, type ModelConfig } from './config.js';
import { buildDecode } from './generate.js';
import type { ParamStore, PeftConfig } from './weights.js';

/**
 * The model as one ONNX inference graph that any onnxruntime runs: a decoder step with a KV cache
 * of `cacheLen` positions (weights inside the file, LoRA and prefix included). Feed the prompt one
 * token at a time, then each generated token; `decoder.json` says what every input and output is.
 */
export function exportOnnxDecoder(dir: string, config: ModelConfig, peft: PeftConfig, store: ParamStore, cacheLen: number): { bytes: number } {
  mkdirSync(dir, { recursive: true });
  const bytes = toOnnx(buildDecode(config, peft, store, cacheLen, 1, 'initializer'));
  writeFileAtomic(join(dir, 'decoder.onnx'), bytes);
  const dh = headDim(config), prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const kv = `float32 [1, ${config.num_key_value_heads}, ${cacheLen}, ${dh}]`;
  writeFileAtomic(join(dir, 'decoder.json'), JSON.stringify({
    format: 'flglm-onnx-decoder-1',
    model: config, cache_len: cacheLen, prefix_len: prefix, layers: config.num_hidden_layers, rope_theta: config.rope_theta, head_dim: dh,
    inputs: {
      token: 'int64 [1, 1]: the token at position p (0-based)',
      cos: `float32 [1, ${dh / 2}]: cos(p / rope_theta^(2i / head_dim)) for i = 0..head_dim/2-1`,
      sin: `float32 [1, ${dh / 2}]: sin of the same angles`,
      mask: `float32 [1, ${prefix + cacheLen + 1}]: 0 where the token may attend, -1e9 elsewhere: the ${prefix} prefix slots and cache slots 0..p-1 are 0, slots p..${cacheLen - 1} are -1e9, the last slot (the token itself) is 0`,
      'past_key_<l>, past_value_<l>': `${kv}: keys (after RoPE) and values of positions 0..p-1 in slots 0..p-1 (zeros elsewhere)`,
    },
    outputs: {
      logits: `float32 [1, ${config.vocab_size}]: next-token logits`,
      'key_<l>, value_<l>': `float32 [1, ${config.num_key_value_heads}, 1, ${dh}]: this token's key and value: write them into slot p of the cache`,
    },
  }, null, 2));
  return { bytes: bytes.byteLength };
}
