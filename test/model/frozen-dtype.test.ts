import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS, type ModelConfig } from '../../src/model/config.js';
import { addPeftParams, initParams, type ParamStore, type PeftConfig } from '../../src/model/params.js';
import { exportHfFolder, importHfFolder } from '../../src/model/hf.js';
import { loadSafetensors, saveSafetensors } from '../../src/model/safetensors.js';
import { toHalfBits } from '../../src/model/frozen-dtype.js';
import { buildPartProgram } from '../../src/model/partition.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { tensor } from '../../src/runtime/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { bf16sToFloats, floatsToBf16s, floatsToHalves, halvesToFloats } from '../../src/util/half.js';

const config: ModelConfig = {
  ...PRESETS.tiny,
  model_type: 'qwen2',
  attention_bias: true,
  tie_word_embeddings: true,
  num_hidden_layers: 4,
};
const split = { head_blocks: 1, tail_blocks: 1 };
const lora: PeftConfig = {
  method: 'lora',
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v', 'down'] },
  prefix: { length: 2 },
};
const bytes = (a: Uint16Array | Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const isProj = (n: string) => /_proj\.weight$/.test(n);

describe('frozen weights in float16 (model.frozen_dtype)', () => {
  test("BF16 -> float16 is exact in float16's normal range, within 2^-25 below it; overflow refuses; F16 passes through", () => {
    const rng = new Rng(3);
    const values = Float32Array.from(
      { length: 4000 },
      (_, i) => rng.normal() * (i % 2 ? 0.02 : 30) * (i % 7 === 0 ? 1e-4 : 1),
    );
    const bf = floatsToBf16s(values),
      exact = bf16sToFloats(bf);
    const half = halvesToFloats(toHalfBits(bytes(bf), 'BF16')!);
    let subnormals = 0;
    for (let i = 0; i < values.length; i++) {
      if (Math.abs(exact[i]) >= 2 ** -14) expect(half[i]).toBe(exact[i]);
      else {
        subnormals++;
        expect(Math.abs(half[i] - exact[i])).toBeLessThanOrEqual(2 ** -25);
      }
    }
    expect(subnormals).toBeGreaterThan(10); // the case is exercised
    expect(toHalfBits(bytes(floatsToBf16s(Float32Array.of(1, 70000))), 'BF16')).toBeNull();
    expect(toHalfBits(bytes(Float32Array.of(1, -1e6)), 'F32')).toBeNull();
    const f16 = floatsToHalves(values);
    expect(toHalfBits(bytes(f16), 'F16')).toEqual(f16);
  });

  test('import: auto keeps BF16/F16 frozen linear weights half, F32 and every trained or non-linear weight float32; float32 widens all; float16 rounds F32 too', () => {
    const store = initParams(config, 1);
    const dirs = { BF16: '', F16: '', F32: '' } as Record<'BF16' | 'F16' | 'F32', string>;
    for (const dtype of ['BF16', 'F16', 'F32'] as const) {
      dirs[dtype] = mkdtempSync(join(tmpdir(), 'flglm-frozen-'));
      exportHfFolder(dirs[dtype], config, store, { dtype });
    }
    const halves = (dir: string, method: PeftConfig['method'], dtype: 'auto' | 'float32' | 'float16') =>
      [...importHfFolder(dir, undefined, { frozen: { method, dtype } }).store]
        .filter(([, p]) => p.half)
        .map(([n]) => n)
        .sort();
    const proj = [...store.keys()].filter(isProj).sort();
    expect(proj.length).toBe(7 * config.num_hidden_layers);
    expect(halves(dirs.BF16, 'lora', 'auto')).toEqual(proj);
    expect(halves(dirs.F16, 'prefix', 'auto')).toEqual(proj);
    expect(halves(dirs.F32, 'lora', 'auto')).toEqual([]);
    expect(halves(dirs.F32, 'lora', 'float16')).toEqual(proj);
    expect(halves(dirs.BF16, 'lora', 'float32')).toEqual([]);
    expect(halves(dirs.BF16, 'full', 'auto')).toEqual([]); // full fine-tuning trains them
    // F16 weights come in bit for bit, transposed to flglm's [in, out] like the float32 ones.
    const f16 = importHfFolder(dirs.F16, undefined, { frozen: { method: 'lora', dtype: 'auto' } }).store.get(
      'model.layers.1.mlp.up_proj.weight',
    )!;
    const widened = importHfFolder(dirs.F16).store.get('model.layers.1.mlp.up_proj.weight')!;
    expect(f16.shape).toEqual(widened.shape);
    expect(halvesToFloats(f16.half!)).toEqual(widened.data);
  });

  /** Two stores with the same values: the linear weights float32 in one, float16 in the other. */
  function twinStores(): { f32: ParamStore; f16: ParamStore } {
    const base = initParams(config, 2);
    addPeftParams(base, config, lora, 2);
    const rng = new Rng(9);
    for (const [n, p] of base)
      if (n.endsWith('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.05 * rng.normal();
    const f32: ParamStore = new Map(),
      f16: ParamStore = new Map();
    for (const [n, p] of base) {
      if (!isProj(n)) {
        f32.set(n, { shape: p.shape, data: p.data.slice() });
        f16.set(n, { shape: p.shape, data: p.data.slice() });
        continue;
      }
      const half = floatsToHalves(p.data);
      f32.set(n, { shape: p.shape, data: halvesToFloats(half) });
      f16.set(n, { shape: p.shape, half });
    }
    return { f32, f16 };
  }

  const closeTo = (a: Float32Array, b: Float32Array) => {
    let worst = 0,
      scale = 1e-6;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(a[i]));
    }
    expect(worst / scale).toBeLessThan(1e-5);
  };

  test('a LoRA step on float16 weights equals the step on the same values in float32: whole model, head (carried), trunk (recomputed), tail', async () => {
    const { f32, f16 } = twinStores();
    const tokens = tensor(
      'int64',
      [2, 12],
      Array.from({ length: 24 }, (_, i) => (i * 37) % config.vocab_size),
    );
    const labels = tensor(
      'int64',
      [24],
      Array.from({ length: 24 }, (_, i) => (i * 11 + 3) % config.vocab_size),
    );
    const results = [];
    for (const store of [f32, f16]) {
      const run = async (part: 'full' | 'head' | 'trunk' | 'tail') =>
        new PartExecutor(part, config, split, lora, store, { threads: 1 });
      const full = await run('full'),
        head = await run('head'),
        trunk = await run('trunk'),
        tail = await run('tail');
      const step = await full.step(tokens, labels);
      const hA = await head.forward(tokens, true);
      const hB = await trunk.forward(hA, true);
      const t = await tail.step(hB, labels);
      const tr = await trunk.backward(hA, t.inputGrad!);
      const hd = await head.backward(tokens, tr.inputGrad!);
      results.push({ step, t, tr, hd });
      for (const e of [full, head, trunk, tail]) await e.release();
    }
    const [a, b] = results;
    expect(Math.abs(a.step.loss - b.step.loss)).toBeLessThan(1e-6 * a.step.loss);
    expect(a.step.grads.size).toBeGreaterThan(0);
    for (const [n, g] of a.step.grads) closeTo(g, b.step.grads.get(n)!);
    for (const k of ['t', 'tr', 'hd'] as const) for (const [n, g] of a[k].grads) closeTo(g, b[k].grads.get(n)!);
    closeTo(a.tr.inputGrad!.data as Float32Array, b.tr.inputGrad!.data as Float32Array);
  });

  test("the backward widens each float16 weight again, after its upstream gradient, instead of keeping the forward's float32 copy alive", () => {
    const { f16 } = twinStores();
    for (const [part, kind] of [
      ['full', 'step'],
      ['trunk', 'backward'],
    ] as const) {
      const { graph } = buildPartProgram(part, kind, config, split, lora, f16, 2, 12);
      const consumers = new Map<unknown, number>();
      for (const n of graph.nodes) for (const i of n.inputs) if (i) consumers.set(i, (consumers.get(i) ?? 0) + 1);
      const halfInputs = graph.inputs.filter((v) => v.dtype === 'float16');
      expect(halfInputs.length).toBeGreaterThan(0);
      // Every float16 weight: one Cast for the forward, used once; the backward's copies go through a
      // Concat with a slice of a float32 value computed in the backward.
      const widenings = graph.nodes.filter((n) => n.op === 'Cast' && halfInputs.includes(n.inputs[0]!));
      expect(widenings.length).toBe(halfInputs.length);
      for (const w of widenings)
        expect([w.inputs[0]!.name, consumers.get(w.outputs[0])]).toEqual([w.inputs[0]!.name, 1]);
      const late = graph.nodes.filter((n) => n.op === 'Concat' && n.inputs.some((i) => i?.dtype === 'float16'));
      expect(late.length).toBeGreaterThan(0);
    }
  });

  test('checkpoints and HF exports of a store with float16 weights write their values (F16 bit for bit)', () => {
    const { f16 } = twinStores();
    const dir = mkdtempSync(join(tmpdir(), 'flglm-frozen-save-'));
    saveSafetensors(join(dir, 'a.safetensors'), new Map([...f16].filter(([n]) => isProj(n))));
    const back = loadSafetensors(join(dir, 'a.safetensors')).tensors;
    for (const [n, p] of f16) if (p.half) expect(back.get(n)!.data).toEqual(halvesToFloats(p.half));
    exportHfFolder(join(dir, 'hf'), config, f16, { dtype: 'F16' });
    const again = importHfFolder(join(dir, 'hf'), undefined, { frozen: { method: 'lora', dtype: 'auto' } }).store;
    for (const [n, p] of f16) if (p.half) expect(again.get(n)!.half).toEqual(p.half);
  });
});
