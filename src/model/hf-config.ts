import { UserError } from '../util/errors.js';
import { headDim, validateModelConfig, type Activation, type LayerType, type ModelConfig } from './config.js';
import type { HfConfigTable } from './families/family.js';
import { familyOf } from './families/registry.js';
import { ConfigKeys } from './hf-config-keys.js';
import { legacyRope, readRope, ropeParameters } from './hf-rope.js';

const ACTIVATIONS: readonly Activation[] = ['silu', 'gelu_pytorch_tanh', 'gelu'];
const LAYER_TYPES: readonly LayerType[] = ['full_attention', 'sliding_attention'];

/**
 * From a Hugging Face config.json object, in either form transformers writes (see hf-rope.ts);
 * `model_type` picks the family, whose table (families/*.ts) says which keys it reads and their
 * defaults. A key no rule reads is refused by name, never dropped.
 */
export function fromHfConfig(hf: Record<string, unknown>): ModelConfig {
  const type = String(hf.model_type ?? 'llama');
  const family = familyOf(type);
  const k = new ConfigKeys(hf, family.config, type);
  const hidden = k.num('hidden_size'),
    heads = k.num('num_attention_heads'),
    layers = k.num('num_hidden_layers');
  const dh = k.reads('head_dim') ? k.optionalNum('head_dim') : undefined;
  const maxPositions = k.num('max_position_embeddings', 2048);
  const actKey = k.reads('hidden_activation') ? 'hidden_activation' : 'hidden_act';
  const act = (k.reads(actKey) ? (k.get(actKey) ?? 'silu') : 'silu') as Activation;
  if (!ACTIVATIONS.includes(act)) k.refuse(actKey, `supported: ${ACTIVATIONS.join(', ')}`);
  const dropout = k.get('attention_dropout');
  if (dropout !== undefined && dropout !== null && dropout !== 0)
    k.refuse(
      'attention_dropout',
      "dropout inside attention is not implemented: training would differ from transformers'",
    );
  const rope = readRope(k, {
    maxPositions,
    headDim: dh ?? hidden / heads,
    aliases: family.config.ropeAliases,
    perLayerType: family.config.ropePerLayerType === true,
  });
  const optional = (key: 'attn_logit_softcapping' | 'final_logit_softcapping' | 'query_pre_attn_scalar') => {
    const v = k.reads(key) ? k.optionalNum(key) : undefined;
    return v === undefined ? {} : { [key]: v };
  };
  const c: ModelConfig = {
    model_type: type,
    vocab_size: k.num('vocab_size'),
    hidden_size: hidden,
    intermediate_size: k.num('intermediate_size'),
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: k.optionalNum('num_key_value_heads') ?? heads,
    rms_norm_eps: k.num('rms_norm_eps', 1e-6),
    rope_theta: rope.rope_theta,
    max_position_embeddings: maxPositions,
    tie_word_embeddings: k.bool('tie_word_embeddings', false),
    attention_bias: k.reads('attention_bias') ? k.bool('attention_bias', false) : false,
    ...(dh !== undefined && dh !== hidden / heads ? { head_dim: dh } : {}),
    ...(act !== 'silu' ? { hidden_act: act } : {}),
    ...(k.reads('mlp_bias') && k.bool('mlp_bias') ? { mlp_bias: true } : {}),
    ...(rope.rope_scaling ? { rope_scaling: rope.rope_scaling } : {}),
    ...(rope.local_rope ? { local_rope: rope.local_rope } : {}),
    ...(rope.partial_rotary_factor !== undefined ? { partial_rotary_factor: rope.partial_rotary_factor } : {}),
    ...readLayers(k, family.config, layers),
    ...optional('query_pre_attn_scalar'),
    ...optional('attn_logit_softcapping'),
    ...optional('final_logit_softcapping'),
  };
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    const id = hf[key];
    if (typeof id === 'number' || (Array.isArray(id) && id.every((x) => typeof x === 'number'))) c[key] = id;
  }
  k.finish();
  validateModelConfig(c);
  return c;
}

/** Which layers slide, and the window: `layer_types` where the file lists them, else the family's rule. */
function readLayers(
  k: ConfigKeys,
  t: HfConfigTable,
  layers: number,
): Pick<ModelConfig, 'layer_types' | 'sliding_window'> {
  if (t.sliding === 'never') return {};
  let window = k.optionalNum('sliding_window');
  let slides: (layer: number) => boolean;
  if (t.sliding === 'every-layer') slides = () => window !== undefined;
  else if (t.sliding === 'from-max-window-layers') {
    // transformers: sliding_window is None unless use_sliding_window; then layers from max_window_layers on slide.
    if (!k.bool('use_sliding_window')) window = undefined;
    const from = k.num('max_window_layers', layers);
    slides = (l) => window !== undefined && l >= from;
  } else {
    const every = k.reads('sliding_window_pattern') ? k.num('sliding_window_pattern') : t.sliding.fullEvery;
    slides = (l) => (l + 1) % every !== 0;
  }
  const listed = k.reads('layer_types') ? k.get('layer_types') : undefined;
  if (
    listed != null &&
    !(Array.isArray(listed) && listed.length === layers && listed.every((x) => LAYER_TYPES.includes(x as LayerType)))
  )
    k.refuse('layer_types', `expected ${layers} entries, each full_attention or sliding_attention`);
  const types =
    (listed as LayerType[] | null | undefined) ??
    Array.from({ length: layers }, (_, l): LayerType => (slides(l) ? 'sliding_attention' : 'full_attention'));
  if (!types.includes('sliding_attention')) return {};
  if (window === undefined)
    throw new UserError('config.json: layer_types has sliding_attention layers but sliding_window is null');
  return { layer_types: [...types], sliding_window: window };
}

/** config.json for a model, in both forms at once (transformers 5 and older releases read it alike). */
export function toHfConfig(c: ModelConfig): Record<string, unknown> {
  const family = familyOf(c.model_type);
  const t = family.config;
  const reads = (key: (typeof t.reads)[number]) => t.reads.includes(key);
  const out: Record<string, unknown> = {
    architectures: [family.architecture],
    model_type: c.model_type,
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    rms_norm_eps: c.rms_norm_eps,
    max_position_embeddings: c.max_position_embeddings,
    tie_word_embeddings: c.tie_word_embeddings,
  };
  if (reads('head_dim')) out.head_dim = headDim(c);
  if (reads('attention_bias')) out.attention_bias = c.attention_bias;
  if (reads('mlp_bias')) out.mlp_bias = c.mlp_bias ?? false;
  out[reads('hidden_activation') ? 'hidden_activation' : 'hidden_act'] = c.hidden_act ?? 'silu';
  const global = { rope_theta: c.rope_theta, rope_scaling: c.rope_scaling };
  Object.assign(out, legacyRope(global));
  if (t.ropePerLayerType) {
    const local = c.local_rope ?? { rope_theta: c.rope_theta };
    if (!local.rope_scaling) out.rope_local_base_freq = local.rope_theta;
    out.rope_parameters = { full_attention: ropeParameters(global), sliding_attention: ropeParameters(local) };
  } else {
    const partial = reads('partial_rotary_factor') ? { partial_rotary_factor: c.partial_rotary_factor ?? 1 } : {};
    out.rope_parameters = ropeParameters(global, partial);
    Object.assign(out, partial);
  }
  if (reads('original_max_position_embeddings'))
    out.original_max_position_embeddings =
      c.rope_scaling && 'original_max_position_embeddings' in c.rope_scaling
        ? c.rope_scaling.original_max_position_embeddings
        : c.max_position_embeddings;
  Object.assign(out, layerKeys(c, t));
  for (const key of ['query_pre_attn_scalar', 'attn_logit_softcapping', 'final_logit_softcapping'] as const)
    if (reads(key)) out[key] = c[key] ?? null;
  // Token ids as the base had them; no padding id rather than transformers' default (Phi-3's is 32000).
  out.bos_token_id = c.bos_token_id ?? null;
  out.eos_token_id = c.eos_token_id ?? null;
  out.pad_token_id = c.pad_token_id ?? null;
  out.torch_dtype = 'float32';
  return out;
}

/** Keys transformers types as float: written with a decimal point (its strict config classes refuse 30 for 30.0). */
const FLOAT_KEYS = new Set([
  'rms_norm_eps',
  'rope_theta',
  'rope_local_base_freq',
  'partial_rotary_factor',
  'attn_logit_softcapping',
  'final_logit_softcapping',
  'factor',
  'low_freq_factor',
  'high_freq_factor',
  'attention_factor',
  'beta_fast',
  'beta_slow',
]);

/** config.json's text for `toHfConfig`'s object, floats as floats. */
export function hfConfigText(hf: Record<string, unknown>): string {
  const text = JSON.stringify(hf, (key, v) => (FLOAT_KEYS.has(key) && Number.isInteger(v) ? `__float__${v}` : v), 2);
  return text.replace(/"__float__(-?\d+)"/g, '$1.0');
}

function layerKeys(c: ModelConfig, t: HfConfigTable): Record<string, unknown> {
  const types = c.layer_types ?? Array.from({ length: c.num_hidden_layers }, (): LayerType => 'full_attention');
  const first = types.indexOf('sliding_attention');
  const window = c.sliding_window ?? null;
  if (t.sliding === 'never') {
    if (first >= 0) throw new Error(`${c.model_type} has no sliding-window layers`);
    return {};
  }
  if (t.sliding === 'every-layer') {
    if (first >= 0 && types.includes('full_attention'))
      throw new Error(`${c.model_type} slides every layer or none (layer_types ${types.join(',')})`);
    return { sliding_window: window };
  }
  if (t.sliding === 'from-max-window-layers')
    return {
      use_sliding_window: first >= 0,
      sliding_window: window,
      max_window_layers: first >= 0 ? first : c.num_hidden_layers,
      layer_types: types,
    };
  return { sliding_window: window ?? 4096, layer_types: types };
}
