import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { PRESETS, headDim, type ModelConfig } from '../../src/model/config.js';
import {
  addPeftParams,
  float32Of,
  initParams,
  baseParamShapes,
  type ParamStore,
  type PeftConfig,
} from '../../src/model/params.js';
import { exportHfFolder, importHfFolder } from '../../src/model/hf.js';
import { toHfConfig } from '../../src/model/hf-config.js';
import { mergeLora } from '../../src/model/lora.js';
import { exportOnnxDecoder } from '../../src/model/export-onnx.js';
import { generate } from '../../src/model/generate.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/model/safetensors.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { tensor } from '../../src/runtime/tensor.js';
import { UserError } from '../../src/util/errors.js';

const dir = () => mkdtempSync(join(tmpdir(), 'flglm-export-'));
const split = { head_blocks: 1, tail_blocks: 1 };
const full: PeftConfig = {
  method: 'full',
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v', 'down'] },
  prefix: { length: 2 },
};
const lora: PeftConfig = { ...full, method: 'lora' };
const tokens = tensor(
  'int64',
  [2, 8],
  Array.from({ length: 16 }, (_, i) => (i * 29 + 3) % 250),
);
const labels = tensor(
  'int64',
  [16],
  Array.from({ length: 16 }, (_, i) => (i * 31 + 7) % 250),
);

async function score(config: ModelConfig, store: ParamStore, peft = full) {
  const ex = new PartExecutor('full', config, split, peft, store, { threads: 1 });
  const r = await ex.evaluate(tokens, labels);
  await ex.release();
  return r;
}

function trainedLora(config: ModelConfig): ParamStore {
  const store = initParams(config, 3);
  addPeftParams(store, config, lora, 3);
  for (const [n, p] of store)
    if (n.endsWith('lora_B')) p.data.forEach((_, i) => (p.data[i] = 0.05 * Math.sin(i + n.length)));
  return store;
}

test('merging LoRA folds W + (alpha/r) A B into the base weights: same loss and predictions', async () => {
  const config = { ...PRESETS.tiny };
  const store = trainedLora(config);
  const merged = mergeLora(store, config, lora);
  expect([...merged.keys()].some((n) => n.includes('lora_'))).toBe(false);
  const a = await score(config, store, lora),
    b = await score(config, merged);
  expect(Math.abs(a.loss - b.loss) / a.loss).toBeLessThan(1e-5);
  expect(Array.from(b.pred)).toEqual(Array.from(a.pred));
  // The deltas are not zero: without merging, the scores differ.
  expect(
    Math.abs((await score(config, new Map([...store].filter(([n]) => !n.includes('lora_'))))).loss - a.loss),
  ).toBeGreaterThan(1e-4);
});

test('sharded export with an index, half precision, tokenizer assets and generation_config.json', async () => {
  const config = { ...PRESETS.tiny };
  const store = initParams(config, 9);
  const src = dir();
  writeFileSync(join(src, 'tokenizer_config.json'), '{"eos_token": "x"}');
  const out = dir();
  exportHfFolder(out, config, store, {
    maxShardBytes: 20_000,
    assetsFrom: src,
    specialTokens: { bos: 256, eos: 257, pad: 258 },
  });
  const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
  const shards = readdirSync(out).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  expect(shards.length).toBeGreaterThan(2);
  expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
  expect(Object.keys(index.weight_map).sort()).toEqual(
    baseParamShapes(config)
      .map(([n]) => n)
      .sort(),
  );
  expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
  expect(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).toBe('{"eos_token": "x"}');
  expect(JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8'))).toEqual({
    bos_token_id: 256,
    eos_token_id: 257,
    pad_token_id: 258,
  });
  const back = importHfFolder(out);
  for (const [n, p] of store)
    expect(Buffer.from(float32Of(back.store.get(n)!).buffer).equals(Buffer.from(p.data.buffer))).toBe(true);
  // Half precision: half the bytes, values rounded to the nearest representable.
  const half = dir();
  exportHfFolder(half, config, store, { dtype: 'BF16' });
  expect(JSON.parse(readFileSync(join(half, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
  const h = importHfFolder(half);
  const w = store.get('model.layers.0.mlp.up_proj.weight')!.data,
    hw = float32Of(h.store.get('model.layers.0.mlp.up_proj.weight')!);
  for (let i = 0; i < 50; i++) expect(Math.abs(hw[i] - w[i])).toBeLessThanOrEqual(Math.abs(w[i]) / 256 + 1e-12);
  expect(Math.abs((await score(config, h.store)).loss - (await score(config, store)).loss)).toBeLessThan(1e-2);
});

test('F16 and BF16 encoding rounds to nearest even and round-trips through the decoder', () => {
  const values = Float32Array.of(1, -2, 0.1, 65504, 1e-7, 3.14159, 0);
  const f16 = decodeSafetensors(
    encodeSafetensors(new Map([['a', { shape: [7], data: values }]]), {}, 'F16'),
  ).tensors.get('a')!.data;
  expect(Array.from(f16)).toEqual([1, -2, 0.0999755859375, 65504, 1.1920928955078125e-7, 3.140625, 0]);
  const bf16 = decodeSafetensors(
    encodeSafetensors(new Map([['a', { shape: [7], data: values }]]), {}, 'BF16'),
  ).tensors.get('a')!.data;
  expect(Array.from(bf16.subarray(0, 3))).toEqual([1, -2, 0.10009765625]);
  expect(bf16[5]).toBe(3.140625);
});

test.each([false, true])(
  'the ONNX decoder runs in plain onnxruntime: greedy tokens equal flglm generation (LoRA included; external data %s)',
  async (externalData) => {
    const config = { ...PRESETS.tiny };
    const store = trainedLora(config);
    const prompt = [256, 72, 101, 108, 108, 111];
    const cacheLen = 16;
    const expected = await generate(
      config,
      lora,
      store,
      prompt,
      { maxNewTokens: 6, temperature: 0, topK: 0, seed: 0 },
      { threads: 1 },
    );
    const out = dir();
    const written = exportOnnxDecoder(out, config, lora, store, cacheLen, { externalData });
    expect(existsSync(join(out, 'decoder.onnx.data'))).toBe(externalData);
    if (externalData)
      expect(statSync(join(out, 'decoder.onnx')).size).toBeLessThan(statSync(join(out, 'decoder.onnx.data')).size / 2);
    expect(written.dataFile).toBe(externalData ? 'decoder.onnx.data' : undefined);
    const spec = JSON.parse(readFileSync(join(out, 'decoder.json'), 'utf8'));
    expect(spec).toMatchObject({ cache_len: cacheLen, layers: config.num_hidden_layers, head_dim: headDim(config) });
    // Decode by hand from decoder.json alone: the prompt one token at a time, then greedy.
    const session = await ort.InferenceSession.create(join(out, 'decoder.onnx'));
    const L = config.num_hidden_layers,
      hkv = config.num_key_value_heads,
      dh = headDim(config),
      half = dh / 2;
    const keys = Array.from({ length: L }, () => new Float32Array(hkv * cacheLen * dh));
    const values = Array.from({ length: L }, () => new Float32Array(hkv * cacheLen * dh));
    const seq = [...prompt];
    const generated: number[] = [];
    for (let p = 0; generated.length < 6; p++) {
      const cos = new Float32Array(half),
        sin = new Float32Array(half);
      for (let i = 0; i < half; i++) {
        const a = p * spec.rope.global.inv_freq[i];
        cos[i] = Math.cos(a);
        sin[i] = Math.sin(a);
      }
      const mask = new Float32Array(cacheLen + 1).fill(-1e9);
      mask.fill(0, 0, p);
      mask[cacheLen] = 0;
      const feeds: Record<string, ort.Tensor> = {
        token: new ort.Tensor('int64', BigInt64Array.of(BigInt(seq[p])), [1, 1]),
        cos: new ort.Tensor('float32', cos, [1, half]),
        sin: new ort.Tensor('float32', sin, [1, half]),
        mask: new ort.Tensor('float32', mask, [1, cacheLen + 1]),
      };
      for (let l = 0; l < L; l++) {
        feeds[`past_key_${l}`] = new ort.Tensor('float32', keys[l], [1, hkv, cacheLen, dh]);
        feeds[`past_value_${l}`] = new ort.Tensor('float32', values[l], [1, hkv, cacheLen, dh]);
      }
      const r = await session.run(feeds);
      for (let l = 0; l < L; l++) {
        const k = r[`key_${l}`].data as Float32Array,
          v = r[`value_${l}`].data as Float32Array;
        for (let hh = 0; hh < hkv; hh++) {
          keys[l].set(k.subarray(hh * dh, (hh + 1) * dh), (hh * cacheLen + p) * dh);
          values[l].set(v.subarray(hh * dh, (hh + 1) * dh), (hh * cacheLen + p) * dh);
        }
      }
      if (p >= prompt.length - 1) {
        const logits = r.logits.data as Float32Array;
        let best = 0;
        for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        generated.push(best);
        seq.push(best);
      }
    }
    await session.release();
    expect(generated).toEqual(expected);
  },
);

describe('Qwen3 (q/k RMSNorm, head_dim wider than hidden / heads)', () => {
  const qwen3: ModelConfig = { ...PRESETS.tiny, model_type: 'qwen3', head_dim: 16, tie_word_embeddings: true };

  test('its weights, split == unsplit, and an HF round trip with equal outputs', async () => {
    const store = initParams(qwen3, 4);
    expect(store.get('model.layers.0.self_attn.q_norm.weight')!.shape).toEqual([16]);
    expect(store.get('model.layers.0.self_attn.q_proj.weight')!.shape).toEqual([32, 64]);
    expect(store.get('model.layers.0.self_attn.o_proj.weight')!.shape).toEqual([64, 32]);
    for (const [n, p] of store)
      if (n.endsWith('_norm.weight')) p.data.forEach((_, i) => (p.data[i] = 1 + 0.3 * Math.cos(i + n.length)));
    const ref = await score(qwen3, store);
    const head = new PartExecutor('head', qwen3, split, full, store, { threads: 1 });
    const trunk = new PartExecutor('trunk', qwen3, split, full, store, { threads: 1 });
    const tail = new PartExecutor('tail', qwen3, split, full, store, { threads: 1 });
    const t = await tail.evaluate(await trunk.forward(await head.forward(tokens)), labels);
    expect(Math.abs(t.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    for (const e of [head, trunk, tail]) await e.release();
    const out = dir();
    exportHfFolder(out, qwen3, store);
    const hf = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(hf).toMatchObject({ architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', head_dim: 16 });
    const back = importHfFolder(out);
    expect(back.config).toEqual(qwen3);
    expect((await score(back.config, back.store)).loss).toBe(ref.loss);
    // The q/k norms matter: with them at 1 the model scores differently.
    const plain = new Map(store);
    for (const [n, p] of store)
      if (n.includes('_norm.weight') && n.includes('self_attn'))
        plain.set(n, { shape: p.shape, data: new Float32Array(p.data.length).fill(1) });
    expect(Math.abs((await score(qwen3, plain)).loss - ref.loss)).toBeGreaterThan(1e-5);
  });

  test('config.json features flglm does not implement are refused by name', () => {
    const out = dir();
    writeFileSync(
      join(out, 'config.json'),
      JSON.stringify({ ...toHfConfig(PRESETS.tiny), rope_scaling: { rope_type: 'dynamic', factor: 8 } }),
    );
    expect(() => importHfFolder(out)).toThrow(UserError);
    expect(() => importHfFolder(out)).toThrow(/rope type "dynamic" is not supported \(dynamic NTK/);
  });
});
