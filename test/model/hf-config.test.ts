import { fromHfConfig, toHfConfig } from '../../src/model/hf-config.js';
import { baseParamShapes, peftParamShapes, type PeftConfig } from '../../src/model/params.js';
import { UserError } from '../../src/util/errors.js';

// config.json as the Hub has it (files saved by transformers 4.x, keys as published) and as
// transformers 5 writes it: every one reads, and a key that would change the math without flglm
// implementing it is refused by name.

const LLAMA_32_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: 128001,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};
const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.42.3',
  use_cache: true,
  vocab_size: 49152,
};
const MISTRAL_7B_V01 = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.34.0.dev0',
  use_cache: true,
  vocab_size: 32000,
};
const GEMMA2_2B = {
  architectures: ['Gemma2ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: 50.0,
  bos_token_id: 2,
  cache_implementation: 'hybrid',
  eos_token_id: 1,
  final_logit_softcapping: 30.0,
  head_dim: 256,
  hidden_act: 'gelu_pytorch_tanh',
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 2304,
  initializer_range: 0.02,
  intermediate_size: 9216,
  max_position_embeddings: 8192,
  model_type: 'gemma2',
  num_attention_heads: 8,
  num_hidden_layers: 26,
  num_key_value_heads: 4,
  pad_token_id: 0,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 10000.0,
  sliding_window: 4096,
  torch_dtype: 'float32',
  transformers_version: '4.42.4',
  use_cache: true,
  vocab_size: 256000,
};
const GEMMA3_1B = {
  architectures: ['Gemma3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: null,
  bos_token_id: 2,
  cache_implementation: 'hybrid',
  eos_token_id: [1, 106],
  final_logit_softcapping: null,
  head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 1152,
  initializer_range: 0.02,
  intermediate_size: 6912,
  max_position_embeddings: 32768,
  model_type: 'gemma3_text',
  num_attention_heads: 4,
  num_hidden_layers: 26,
  num_key_value_heads: 1,
  pad_token_id: 0,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: 512,
  sliding_window_pattern: 6,
  torch_dtype: 'bfloat16',
  transformers_version: '4.50.0.dev0',
  use_cache: true,
  vocab_size: 262144,
};
const PHI3_MINI_4K = {
  _name_or_path: 'Phi-3-mini-4k-instruct',
  architectures: ['Phi3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  auto_map: { AutoConfig: 'configuration_phi3.Phi3Config', AutoModelForCausalLM: 'modeling_phi3.Phi3ForCausalLM' },
  bos_token_id: 1,
  embd_pdrop: 0.0,
  eos_token_id: 32000,
  hidden_act: 'silu',
  hidden_size: 3072,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 4096,
  model_type: 'phi3',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  original_max_position_embeddings: 4096,
  pad_token_id: 32000,
  resid_pdrop: 0.0,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  sliding_window: 2047,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.2',
  use_cache: true,
  vocab_size: 32064,
};
const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const without = (o: Record<string, unknown>, ...keys: string[]) =>
  Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));

const refused = (hf: Record<string, unknown>, message: RegExp) => {
  expect(() => fromHfConfig(hf)).toThrow(UserError);
  expect(() => fromHfConfig(hf)).toThrow(message);
};

test('real Hub config.json files read with their features; each writes back as it reads', () => {
  const llama = fromHfConfig(LLAMA_32_1B);
  expect(llama).toMatchObject({
    rope_theta: 500000,
    tie_word_embeddings: true,
    rope_scaling: { rope_type: 'llama3', factor: 32, original_max_position_embeddings: 8192 },
  });
  expect(fromHfConfig(SMOLLM2_135M)).toMatchObject({ rope_theta: 100000, num_key_value_heads: 3 });
  expect(fromHfConfig(MISTRAL_7B_V01)).toMatchObject({
    sliding_window: 4096,
    layer_types: Array(32).fill('sliding_attention'),
  });
  const gemma2 = fromHfConfig(GEMMA2_2B);
  expect(gemma2).toMatchObject({
    attn_logit_softcapping: 50,
    final_logit_softcapping: 30,
    head_dim: 256,
    hidden_act: 'gelu_pytorch_tanh',
  });
  expect(gemma2.layer_types!.slice(0, 3)).toEqual(['sliding_attention', 'full_attention', 'sliding_attention']);
  const gemma3 = fromHfConfig(GEMMA3_1B);
  expect(gemma3).toMatchObject({
    rope_theta: 1e6,
    local_rope: { rope_theta: 10000 },
    sliding_window: 512,
    tie_word_embeddings: true,
  });
  expect(gemma3.layer_types!.filter((t) => t === 'full_attention')).toHaveLength(4); // layers 5, 11, 17, 23
  expect(gemma3.layer_types![5]).toBe('full_attention');
  expect(fromHfConfig(PHI3_MINI_4K)).toMatchObject({ sliding_window: 2047, rms_norm_eps: 1e-5 });
  expect(fromHfConfig(QWEN25_05B).layer_types).toBeUndefined(); // use_sliding_window false: no window at all
  for (const hf of [LLAMA_32_1B, SMOLLM2_135M, MISTRAL_7B_V01, GEMMA2_2B, GEMMA3_1B, PHI3_MINI_4K, QWEN25_05B]) {
    const c = fromHfConfig(hf);
    expect(fromHfConfig(toHfConfig(c))).toEqual(c);
  }
});

test('both forms of every RoPE field: rope_parameters (flat and per layer type), rope_theta + rope_scaling with rope_type or type', () => {
  const { rope_scaling, rope_theta, ...rest } = LLAMA_32_1B;
  const v5 = fromHfConfig({ ...rest, rope_parameters: { ...rope_scaling, rope_theta } });
  expect(v5).toEqual(fromHfConfig(LLAMA_32_1B));
  // LLaMA 2-era linear scaling wrote `type`.
  expect(fromHfConfig({ ...LLAMA_32_1B, rope_scaling: { type: 'linear', factor: 2 } }).rope_scaling).toEqual({
    rope_type: 'linear',
    factor: 2,
  });
  // Gemma 3, transformers 5: one dict per layer type, and what the older keys default to.
  const gemma = without(GEMMA3_1B, 'rope_local_base_freq', 'rope_theta', 'rope_scaling');
  const nested = fromHfConfig({
    ...gemma,
    rope_parameters: {
      full_attention: { rope_type: 'linear', factor: 8, rope_theta: GEMMA3_1B.rope_theta },
      sliding_attention: { rope_type: 'default', rope_theta: GEMMA3_1B.rope_local_base_freq },
    },
  });
  expect(nested).toEqual(fromHfConfig({ ...GEMMA3_1B, rope_scaling: { rope_type: 'linear', factor: 8 } }));
  expect(fromHfConfig(gemma)).toMatchObject({ rope_theta: 1e6, local_rope: { rope_theta: 10000 } }); // transformers' defaults
  // YaRN (Qwen long-context files) with its attention factor 0.1 ln(factor) + 1; Phi-3's su / yarn read as longrope.
  const yarn = fromHfConfig({
    ...QWEN25_05B,
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 32768 },
  });
  expect(yarn.rope_scaling).toMatchObject({
    rope_type: 'yarn',
    factor: 4,
    beta_fast: 32,
    beta_slow: 1,
    truncate: true,
  });
  expect((yarn.rope_scaling as { attention_factor: number }).attention_factor).toBeCloseTo(0.1 * Math.log(4) + 1, 12);
  const longFactors = Array.from({ length: 48 }, (_, i) => 1 + i / 48);
  const phi128k = fromHfConfig({
    ...PHI3_MINI_4K,
    max_position_embeddings: 131072,
    rope_scaling: { type: 'su', long_factor: longFactors, short_factor: longFactors },
  });
  expect(phi128k.rope_scaling).toMatchObject({ rope_type: 'longrope', original_max_position_embeddings: 4096 });
  expect((phi128k.rope_scaling as { attention_factor: number }).attention_factor).toBeCloseTo(
    Math.sqrt(1 + Math.log(32) / Math.log(4096)),
    12,
  );
});

test('what flglm does not implement is refused by name, never dropped', () => {
  refused(
    { ...LLAMA_32_1B, rope_scaling: { rope_type: 'dynamic', factor: 2 } },
    /rope type "dynamic" is not supported \(dynamic NTK/,
  );
  refused(
    { ...LLAMA_32_1B, rope_scaling: { ...LLAMA_32_1B.rope_scaling, mystery: 1 } },
    /rope_scaling\.mystery is not a key flglm reads/,
  );
  refused(
    { ...LLAMA_32_1B, use_sliding_window: true },
    /"use_sliding_window" is not something flglm's llama family reads/,
  );
  refused(
    { ...LLAMA_32_1B, quantization_config: { quant_method: 'awq' } },
    /quantization_config .*quantized checkpoints are not supported/,
  );
  refused(
    { ...LLAMA_32_1B, attention_dropout: 0.1 },
    /attention_dropout 0.1 is not supported .*dropout inside attention/,
  );
  refused({ ...LLAMA_32_1B, hidden_act: 'relu' }, /hidden_act "relu" is not supported .*silu, gelu_pytorch_tanh, gelu/);
  refused(
    { ...LLAMA_32_1B, partial_rotary_factor: 0.5 },
    /"partial_rotary_factor" is not something flglm's llama family reads/,
  );
  refused(
    {
      ...SMOLLM2_135M,
      rope_theta: undefined,
      rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.5 },
    },
    /partial_rotary_factor 0.5 is not supported for model_type llama/,
  );
  refused({ ...SMOLLM2_135M, rope_interleaved: true }, /rope_interleaved true .*interleaved RoPE is not implemented/);
  refused({ ...GEMMA3_1B, attn_logit_softcapping: 50 }, /attn_logit_softcapping 50 .*Gemma 3 does not apply it/);
  refused({ ...GEMMA2_2B, use_bidirectional_attention: true }, /use_bidirectional_attention true .*bidirectional/);
  refused({ ...PHI3_MINI_4K, resid_pdrop: 0.1 }, /resid_pdrop 0.1 .*residual dropout/);
  refused({ ...MISTRAL_7B_V01, mlp_bias: true }, /"mlp_bias" is not something flglm's mistral family reads/);
  refused(
    { ...MISTRAL_7B_V01, rope_parameters: { rope_theta: 20000 } },
    /rope_theta 10000 and rope_parameters.rope_theta 20000 disagree/,
  );
  refused({ ...QWEN25_05B, layer_types: ['sliding_attention'] }, /layer_types .*expected 24 entries/);
});

test("each family's defaults for keys a file leaves out are transformers' own", () => {
  expect(fromHfConfig(without(MISTRAL_7B_V01, 'sliding_window')).sliding_window).toBe(4096); // MistralConfig's default
  expect(fromHfConfig({ ...MISTRAL_7B_V01, sliding_window: null }).layer_types).toBeUndefined();
  expect(fromHfConfig(without(GEMMA2_2B, 'attn_logit_softcapping', 'final_logit_softcapping'))).toMatchObject({
    attn_logit_softcapping: 50,
    final_logit_softcapping: 30,
  });
  expect(
    fromHfConfig({ ...QWEN25_05B, use_sliding_window: true, max_window_layers: 21 }).layer_types!.indexOf(
      'sliding_attention',
    ),
  ).toBe(21);
});

test('LoRA targets are the projections the family has: Phi-3 fuses q, k, v and gate, up', () => {
  const phi3 = fromHfConfig({ ...PHI3_MINI_4K, num_hidden_layers: 2 });
  const lora = (targets: PeftConfig['lora']['targets']): PeftConfig => ({
    method: 'lora',
    lora: { rank: 4, alpha: 8, dropout: 0, targets },
    prefix: { length: 0 },
  });
  expect(() => peftParamShapes(phi3, lora(['q', 'v']))).toThrow(
    /phi3 has no self_attn.q_proj \(it fuses q, k, v into qkv_proj and gate, up into gate_up_proj\); its targets are qkv, o, gate_up, down/,
  );
  const shapes = new Map(peftParamShapes(phi3, lora(['qkv', 'gate_up'])));
  expect(shapes.get('model.layers.0.self_attn.qkv_proj.lora_B')).toEqual([4, 3 * 3072]);
  expect(shapes.get('model.layers.0.mlp.gate_up_proj.lora_B')).toEqual([4, 2 * 8192]);
  expect(new Map(baseParamShapes(phi3)).get('model.layers.0.self_attn.qkv_proj.weight')).toEqual([3072, 3 * 3072]);
  // LLaMA with mlp_bias (and attention_bias: q, k, v and o, as transformers has them; Qwen2: q, k, v only).
  const biased = new Map(baseParamShapes(fromHfConfig({ ...SMOLLM2_135M, mlp_bias: true, attention_bias: true })));
  expect(
    ['o_proj', 'down_proj'].map((n) => [...biased.keys()].some((k) => k.includes(n) && k.endsWith('.bias'))),
  ).toEqual([true, true]);
  const qwen = new Map(baseParamShapes(fromHfConfig(QWEN25_05B)));
  expect(qwen.has('model.layers.0.self_attn.q_proj.bias') && !qwen.has('model.layers.0.self_attn.o_proj.bias')).toBe(
    true,
  );
});
