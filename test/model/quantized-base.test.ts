import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS, type ModelConfig } from '../../src/model/config.js';
import { addPeftParams, float32Of, initParams, type ParamStore, type PeftConfig } from '../../src/model/params.js';
import { exportHfFolder, exportPeftAdapter, importHfFolder, importPeftAdapter } from '../../src/model/hf.js';
import { quantizeFrozen } from '../../src/model/frozen-dtype.js';
import { dequantize, quantize, type QuantBits, type QuantCompute } from '../../src/model/quantize.js';
import { mergeLora } from '../../src/model/lora.js';
import { buildPartProgram } from '../../src/model/partition.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { PartDecoder } from '../../src/model/part-decoder.js';
import { packValue, unpackValue } from '../../src/server/replica-wire.js';
import { parseConfigText } from '../../src/config/load.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/training/checkpoint.js';
import { tensor } from '../../src/runtime/tensor.js';
import { Rng } from '../../src/util/rng.js';

const config: ModelConfig = { ...PRESETS.tiny, model_type: 'qwen2', attention_bias: true, tie_word_embeddings: true };
const split = { head_blocks: 1, tail_blocks: 1 };
const lora: PeftConfig = {
  method: 'lora',
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v', 'down'] },
  prefix: { length: 2 },
};
const isProj = (n: string) => /_proj\.weight$/.test(n);

/** A LoRA store with its base quantized, and the same values (dequantized) in float32. */
function twinStores(bits: QuantBits, compute: QuantCompute): { f32: ParamStore; quant: ParamStore } {
  const quant = initParams(config, 2);
  addPeftParams(quant, config, lora, 2);
  const rng = new Rng(9);
  for (const [n, p] of quant)
    if (n.endsWith('lora_B')) for (let i = 0; i < p.data!.length; i++) p.data![i] = 0.05 * rng.normal();
  quantizeFrozen(quant, 'lora', bits, compute);
  const f32: ParamStore = new Map([...quant].map(([n, p]) => [n, { shape: p.shape, data: float32Of(p).slice() }]));
  return { f32, quant };
}

function relError(a: Float32Array, b: Float32Array): number {
  let worst = 0,
    scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return worst / scale;
}

/** One LoRA step of the whole model and of head -> trunk -> tail, split as the federation runs it. */
async function steps(store: ParamStore) {
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
  const run = (part: 'full' | 'head' | 'trunk' | 'tail') =>
    new PartExecutor(part, config, split, lora, store, { threads: 1 });
  const [full, head, trunk, tail] = [run('full'), run('head'), run('trunk'), run('tail')];
  const step = await full.step(tokens, labels);
  const hA = await head.forward(tokens, true);
  const hB = await trunk.forward(hA, true);
  const t = await tail.step(hB, labels);
  const tr = await trunk.backward(hA, t.inputGrad!);
  const hd = await head.backward(tokens, tr.inputGrad!);
  for (const e of [full, head, trunk, tail]) await e.release();
  const grads = new Map([...step.grads].map(([n, g]) => [`full/${n}`, g]));
  for (const [k, r] of Object.entries({ t, tr, hd })) for (const [n, g] of r.grads) grads.set(`${k}/${n}`, g);
  grads.set('trunk/input', tr.inputGrad!.data as Float32Array);
  return { loss: step.loss, grads };
}

describe('a quantized frozen base (model.frozen_dtype int8 | int4)', () => {
  test('int8 is per output channel within half a step of each weight; int4 per block of 32 along K; K not a multiple of 32 refuses int4', () => {
    const rng = new Rng(4);
    const [k, n] = [64, 5];
    const w = Float32Array.from({ length: k * n }, (_, i) => rng.normal() * (1 + (i % n))); // channels of different size
    for (const [bits, compute, steps] of [
      [8, 'float', 127],
      [8, 'int8', 63],
      [4, 'int8', 7],
    ] as const) {
      const back = dequantize(quantize(w, [k, n], bits, compute));
      for (let j = 0; j < n; j++)
        for (let b = 0; b < (bits === 8 ? 1 : k / 32); b++) {
          const rows = bits === 8 ? [...Array(k).keys()] : [...Array(32).keys()].map((t) => b * 32 + t);
          const max = Math.max(...rows.map((i) => Math.abs(w[i * n + j])));
          for (const i of rows)
            expect(Math.abs(back[i * n + j] - w[i * n + j])).toBeLessThanOrEqual((max / steps) * 0.5001);
        }
    }
    expect(() => quantize(new Float32Array(48 * 2), [48, 2], 4, 'int8')).toThrow(/multiple of 32/);
  });

  test.each([
    [8, 'float'],
    [4, 'float'],
  ] as const)(
    'int%i, compute %s: the LoRA step equals the float32 step on the dequantized weights to 1e-5 (whole model, head, trunk, tail)',
    async (bits, compute) => {
      const { f32, quant } = twinStores(bits, compute);
      expect([...quant.values()].filter((p) => p.quant).length).toBe(7 * config.num_hidden_layers);
      const [a, b] = [await steps(f32), await steps(quant)];
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * a.loss);
      expect(a.grads.size).toBe(b.grads.size);
      for (const [n, g] of a.grads) expect([n, relError(g, b.grads.get(n)!) < 1e-5]).toEqual([n, true]);
    },
  );

  test.each([
    [8, 'int8'],
    [4, 'int8'],
  ] as const)(
    'int%i, compute %s (activations rounded to 8 bits): the step is within 1 %% of the float32 step on the dequantized weights',
    async (bits, compute) => {
      const { f32, quant } = twinStores(bits, compute);
      const [a, b] = [await steps(f32), await steps(quant)];
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-2 * a.loss);
      for (const [n, g] of a.grads) expect([n, relError(g, b.grads.get(n)!) < 5e-2]).toEqual([n, true]);
    },
  );

  test('a quantized weight crosses to a sub-server (replica wire) and a worker thread intact', () => {
    const { quant } = twinStores(4, 'int8');
    const p = quant.get('model.layers.1.mlp.down_proj.weight')!;
    const { json, tensors } = packValue({ params: [['w', p]] });
    expect((unpackValue(json, tensors) as { params: [string, unknown][] }).params[0][1]).toEqual(p);
    expect(structuredClone(p)).toEqual(p);
  });

  test('serving and generation decode with the quantized kernels: the trunk prefill and decode equal the float32 twin (compute float)', async () => {
    const { f32, quant } = twinStores(4, 'float');
    const rng = new Rng(5);
    const hA = tensor(
      'float32',
      [1, 6, config.hidden_size],
      Float32Array.from({ length: 6 * config.hidden_size }, () => rng.normal()),
    );
    const step = tensor(
      'float32',
      [1, 1, config.hidden_size],
      Float32Array.from({ length: config.hidden_size }, () => rng.normal()),
    );
    const outs = [];
    for (const store of [f32, quant]) {
      const dec = new PartDecoder(config, lora, store, 'trunk', split, 16, { threads: 1 });
      const cache = dec.newCache(1);
      const pre = (await dec.prefill(hA, [6], cache)).data as Float32Array;
      const next = (await dec.decode(step, [6], cache)).data as Float32Array;
      outs.push([pre, next]);
      await dec.release();
    }
    expect(relError(outs[0][0], outs[1][0])).toBeLessThan(1e-5);
    expect(relError(outs[0][1], outs[1][1])).toBeLessThan(1e-5);
  });

  test('the forward multiplies by the quantized weight itself; every dequantization in the backward waits for its dY (no float32 copy lives across the step)', () => {
    for (const [bits, compute, fwd] of [
      [8, 'int8', 'DynamicQuantizeMatMul'],
      [4, 'int8', 'MatMulNBits'],
      [8, 'float', 'DequantizeLinear'],
    ] as const) {
      const { quant } = twinStores(bits, compute);
      const { graph } = buildPartProgram('full', 'step', config, split, lora, quant, 2, 12);
      const qInputs = graph.inputs.filter((v) => v.name.endsWith('#q'));
      expect(qInputs.length).toBe(7 * config.num_hidden_layers);
      expect(graph.inputs.some((v) => isProj(v.name))).toBe(false); // no float weight input at all
      const readers = (v: unknown) => graph.nodes.filter((n) => n.inputs.includes(v as never));
      let backwardUses = 0;
      for (const q of qInputs) {
        // One forward use; any other (the backward's dX) goes through a Reshape into a Concat with a slice of dY.
        expect(readers(q).filter((n) => n.op === fwd)).toHaveLength(1);
        const late = readers(q).filter((n) => n.op !== fwd);
        backwardUses += late.length;
        for (const r of late) {
          expect(r.op).toBe('Reshape');
          const concat = readers(r.outputs[0])[0];
          expect(concat.op).toBe('Concat');
          expect(concat.inputs[1]!.producer!.op).toBe('Cast'); // the zero-length slice of dY
        }
      }
      expect(backwardUses).toBeGreaterThanOrEqual(qInputs.length - 3); // all but layer 0's q, k, v (no dX needed)
      if (compute === 'float') {
        const forwardCopies = graph.nodes.filter((n) => n.op === 'DequantizeLinear' && qInputs.includes(n.inputs[0]!));
        for (const d of forwardCopies) expect(readers(d.outputs[0])).toHaveLength(1); // the forward MatMul only
      }
    }
  });

  test('import: a folder read with int8 / int4 holds every frozen *_proj weight quantized (LoRA and prefix), embeddings and norms float32; full fine-tuning is refused by name', () => {
    const store = initParams(config, 1);
    const dir = mkdtempSync(join(tmpdir(), 'flglm-quant-'));
    exportHfFolder(dir, config, store, { dtype: 'BF16' });
    const proj = [...store.keys()].filter(isProj).sort();
    for (const [dtype, method] of [
      ['int8', 'lora'],
      ['int4', 'prefix'],
    ] as const) {
      const got = importHfFolder(dir, undefined, { frozen: { method, dtype } }).store;
      expect(
        [...got]
          .filter(([, p]) => p.quant)
          .map(([n]) => n)
          .sort(),
      ).toEqual(proj);
      expect(got.get('model.layers.0.mlp.up_proj.weight')!.quant!.bits).toBe(dtype === 'int8' ? 8 : 4);
      expect(got.get('model.embed_tokens.weight')!.data).toBeDefined();
    }
    const full = parseConfigText('model:\n  frozen_dtype: int4\nfinetune:\n  method: full\n');
    expect(full.ok ? [] : full.problems.map((p) => p.message)).toEqual([
      'frozen_dtype int4 quantizes the base weights, which full fine-tuning trains; use finetune.method: lora or prefix, or frozen_dtype: auto',
    ]);
    expect(parseConfigText('model:\n  frozen_dtype: int8\nfinetune:\n  method: lora\n').ok).toBe(true);
  });

  test('exports of a LoRA model on a quantized base: the PEFT adapter is the trained adapters, the merged HF folder the dequantized base plus them', () => {
    const { f32, quant } = twinStores(4, 'int8');
    const dir = mkdtempSync(join(tmpdir(), 'flglm-quant-export-'));
    exportPeftAdapter(join(dir, 'adapter'), config, quant, lora);
    const adapter = importPeftAdapter(join(dir, 'adapter'), config).tensors;
    expect(adapter.size).toBe(2 * 3 * config.num_hidden_layers);
    for (const [n, t] of adapter) expect(t.data).toEqual(quant.get(n)!.data);
    const [merged, reference] = [mergeLora(quant, config, lora), mergeLora(f32, config, lora)];
    exportHfFolder(join(dir, 'hf'), config, merged);
    const back = importHfFolder(join(dir, 'hf')).store;
    for (const [n, p] of reference) expect([n, back.get(n)!.data]).toEqual([n, p.data]);
  });

  test('a checkpoint of LoRA on a quantized HF base leaves the base in its folder and reads it back quantized the same way', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flglm-quant-ckpt-'));
    exportHfFolder(join(dir, 'base'), config, initParams(config, 3), { dtype: 'BF16' });
    const { store } = importHfFolder(join(dir, 'base'), undefined, { frozen: { method: 'lora', dtype: 'int4' } });
    addPeftParams(store, config, lora, 3);
    saveCheckpoint(join(dir, 'ckpt'), store, { model: config, peft: lora, step: 1, base_model: join(dir, 'base') });
    const { store: back, meta } = loadCheckpoint(join(dir, 'ckpt'));
    expect(meta.quantized_base).toEqual({ dtype: 'int4', compute: 'int8' });
    for (const [n, p] of store) {
      if (p.quant) expect([n, back.get(n)!.quant]).toEqual([n, p.quant]);
      else expect([n, back.get(n)!.data]).toEqual([n, p.data]);
    }
  });
});
