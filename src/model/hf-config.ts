import { UserError } from '../util/errors.js';
import { validateModelConfig, type ModelConfig } from './config.js';
import { familyOf } from './families/registry.js';

/** From a Hugging Face config.json object; `model_type` picks the family (an unknown one is refused). */
export function fromHfConfig(hf: Record<string, unknown>): ModelConfig {
  const num = (k: string, fallback?: number): number => {
    const v = hf[k] ?? fallback;
    if (typeof v !== 'number') throw new UserError(`config.json: missing number "${k}"`);
    return v;
  };
  const type = String(hf.model_type ?? 'llama');
  const family = familyOf(type);
  // Features these families do not implement yet: refused by name rather than computed wrongly.
  if (hf.rope_scaling != null)
    throw new UserError(
      `config.json: rope_scaling ${JSON.stringify(hf.rope_scaling).slice(0, 80)} is not supported yet (plain RoPE only; e.g. Llama 3.1+ use "llama3" scaling)`,
    );
  if (hf.hidden_act !== undefined && hf.hidden_act !== 'silu')
    throw new UserError(`config.json: hidden_act "${String(hf.hidden_act)}" is not supported (SwiGLU with silu only)`);
  if (hf.use_sliding_window === true)
    throw new UserError('config.json: use_sliding_window is not supported (full causal attention only)');
  const c: ModelConfig = {
    model_type: type,
    vocab_size: num('vocab_size'),
    hidden_size: num('hidden_size'),
    intermediate_size: num('intermediate_size'),
    num_hidden_layers: num('num_hidden_layers'),
    num_attention_heads: num('num_attention_heads'),
    num_key_value_heads: num('num_key_value_heads', num('num_attention_heads')),
    rms_norm_eps: num('rms_norm_eps', 1e-6),
    rope_theta: num('rope_theta', 10000),
    max_position_embeddings: num('max_position_embeddings', 2048),
    tie_word_embeddings: Boolean(hf.tie_word_embeddings ?? false),
    attention_bias: Boolean(hf.attention_bias ?? false),
    ...(typeof hf.head_dim === 'number' && hf.head_dim !== num('hidden_size') / num('num_attention_heads')
      ? { head_dim: hf.head_dim }
      : {}),
    ...family.hfDefaults(hf),
  };
  validateModelConfig(c);
  return c;
}

export function toHfConfig(c: ModelConfig): Record<string, unknown> {
  return {
    architectures: [familyOf(c.model_type).architecture],
    ...c,
    hidden_act: 'silu',
    torch_dtype: 'float32',
  };
}
