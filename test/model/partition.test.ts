import { PRESETS } from '../../src/model/config.js';
import { addPeftParams, initParams, type PeftConfig, type FinetuneMethod } from '../../src/model/params.js';
import { buildPartProgram, validateSplit, IGNORE_INDEX } from '../../src/model/partition.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import type { TensorData } from '../../src/runtime/tensor.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { tensor } from '../../src/runtime/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { directionalErrors } from '../helpers/gradcheck.js';

const config = { ...PRESETS.tiny };
const split = { head_blocks: 1, tail_blocks: 1 };
const B = 2,
  S = 12;

function peftFor(method: FinetuneMethod, dropout = 0): PeftConfig {
  return { method, lora: { rank: 4, alpha: 8, dropout, targets: ['q', 'v', 'down'] }, prefix: { length: 3 } };
}

function batch(seed: number) {
  const rng = new Rng(seed);
  const tokens = Array.from({ length: B * S }, () => rng.int(256));
  const labels = tokens.map((_, i) => ((i + 1) % S === 0 ? IGNORE_INDEX : tokens[i + 1]));
  labels[3] = IGNORE_INDEX;
  return { tokens: tensor('int64', [B, S], tokens), labels: tensor('int64', [B * S], labels) };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  const scale = Math.max(1e-6, ...Array.from(b, Math.abs));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
}

describe('three-way split equals the unsplit model', () => {
  test.each([
    ['full', 0],
    ['lora', 0],
    ['lora', 0.3],
    ['prefix', 0],
  ] as [FinetuneMethod, number][])('%s (dropout %s): same loss and gradients', async (method, dropout) => {
    const peft = peftFor(method, dropout);
    const store = initParams(config, 7);
    addPeftParams(store, config, peft, 7);
    if (method === 'lora')
      for (const [n, p] of store)
        if (n.endsWith('lora_B')) p.data.forEach((_, i) => (p.data[i] = 0.01 * Math.sin(i + n.length)));
    const { tokens, labels } = batch(3);

    const full = new PartExecutor('full', config, split, peft, store, { threads: 1 });
    // The same dropout masks for the unsplit model and for the parts (each takes its own layers').
    const masks = await full.newDropoutMasks(B, S);
    expect(Object.keys(masks).length).toBe(dropout > 0 ? 4 * 3 : 0);
    const ref = await full.step(tokens, labels, masks);
    if (dropout > 0)
      expect(
        Math.abs((await full.step(tokens, labels, await full.newDropoutMasks(B, S))).loss - ref.loss),
      ).toBeGreaterThan(1e-6);

    // Both activation policies on both parts, across the methods.
    const head = new PartExecutor(
      'head',
      config,
      split,
      peft,
      store,
      { threads: 1 },
      method === 'prefix' ? 'recompute' : 'carry',
    );
    const trunk = new PartExecutor(
      'trunk',
      config,
      split,
      peft,
      store,
      { threads: 1 },
      method === 'lora' ? 'carry' : 'recompute',
    );
    const tail = new PartExecutor('tail', config, split, peft, store, { threads: 1 });
    const hA = await head.forward(tokens, true, masks);
    const hB = await trunk.forward(hA, true, masks);
    const t = await tail.step(hB, labels, masks);
    const tr = await trunk.backward(hA, t.inputGrad!, masks);
    const hd = await head.backward(tokens, tr.inputGrad!, masks);

    expect(Math.abs(t.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    const splitGrads = new Map([...hd.grads, ...tr.grads, ...t.grads]);
    expect([...splitGrads.keys()].sort()).toEqual([...ref.grads.keys()].sort());
    expect(ref.grads.size).toBeGreaterThan(0);
    for (const [name, g] of ref.grads) {
      const d = maxRelDiff(splitGrads.get(name)!, g);
      if (d > 1e-4) throw new Error(`${method}: gradient of ${name} differs by ${d}`);
    }
    // Only the method's parameters train.
    for (const name of ref.grads.keys()) {
      if (method === 'lora') expect(name).toMatch(/lora_[AB]$/);
      if (method === 'prefix') expect(name).toMatch(/prefix\.(key|value)$/);
    }
    for (const e of [full, head, trunk, tail]) await e.release();
  });

  test('split points are validated with a clear message', () => {
    expect(() => validateSplit(config, { head_blocks: 2, tail_blocks: 2 })).toThrow(/head_blocks \+ tail_blocks < 4/);
    expect(() => validateSplit(config, { head_blocks: 0, tail_blocks: 1 })).toThrow(/head_blocks >= 1/);
    expect(() => validateSplit(config, { head_blocks: 1, tail_blocks: 2 })).not.toThrow();
  });

  test('whole model: autodiff matches finite differences along random directions', async () => {
    const peft = peftFor('full');
    const store = initParams(config, 11);
    const { tokens, labels } = batch(5);
    const full = new PartExecutor('full', config, split, peft, store, { threads: 1 });
    const { loss, grads } = await full.step(tokens, labels);
    expect(Number.isFinite(loss)).toBe(true);
    for (const error of await directionalErrors(full, store, grads, tokens, labels, 3, 9))
      expect(error).toBeLessThan(2e-2);
    await full.release();
  });
});

describe('the LM-head loss in chunks of rows', () => {
  // Chunking must change memory only: the same loss, gradients and predictions as one chunk, for a
  // tied table (the projection is the embedding, used transposed) and an untied lm_head, with full
  // fine-tuning (the projection's own gradient comes from the chunks) and LoRA (it does not train).
  test.each([
    ['tied', 'full'],
    ['untied', 'full'],
    ['tied', 'lora'],
  ] as const)('%s embeddings, %s: 5 chunks equal 1', async (tie, method) => {
    const c = { ...config, tie_word_embeddings: tie === 'tied' };
    const peft = peftFor(method);
    const store = initParams(c, 4);
    addPeftParams(store, c, peft, 4);
    const { tokens, labels } = batch(8);
    const run = async (kind: 'step' | 'eval', lossChunkRows?: number) => {
      const built = buildPartProgram('full', kind, c, split, peft, store, B, S, { lossChunkRows });
      const chunks = built.graph.nodes.filter((n) => n.op === 'SoftmaxCrossEntropyLoss').length;
      const session = await CompiledGraph.create(built.graph, { threads: 1 });
      const feeds: Record<string, TensorData> = { tokens, labels };
      for (const v of built.graph.inputs)
        if (store.has(v.name))
          feeds[v.name] = { dtype: 'float32', shape: store.get(v.name)!.shape, data: store.get(v.name)!.data };
      const out = await session.run(feeds);
      await session.release();
      return { out, chunks };
    };
    const one = await run('step'),
      five = await run('step', 5);
    expect([one.chunks, five.chunks]).toEqual([1, 5]);
    expect(Math.abs(Number(five.out.loss.data[0]) - Number(one.out.loss.data[0]))).toBeLessThan(1e-6);
    const gradNames = Object.keys(one.out).filter((n) => n.startsWith('grad.'));
    expect(
      gradNames.some((n) => n.includes(method === 'lora' ? 'lora_' : tie === 'tied' ? 'embed_tokens' : 'lm_head')),
    ).toBe(true);
    for (const n of gradNames)
      expect(maxRelDiff(five.out[n].data as Float32Array, one.out[n].data as Float32Array)).toBeLessThan(1e-5);
    const [e1, e5] = [await run('eval'), await run('eval', 5)];
    expect(Array.from(e5.out.pred.data as BigInt64Array)).toEqual(Array.from(e1.out.pred.data as BigInt64Array));
    expect(Math.abs(Number(e5.out.loss.data[0]) - Number(one.out.loss.data[0]))).toBeLessThan(1e-6);
  });

  test('every label ignored: loss 0 and zero gradients, not NaN', async () => {
    const store = initParams(config, 2);
    const full = new PartExecutor('full', config, split, peftFor('full'), store, { threads: 1 });
    const r = await full.step(batch(1).tokens, tensor('int64', [B * S], new Array(B * S).fill(IGNORE_INDEX)));
    expect(r.loss === 0).toBe(true); // -0 or 0
    for (const g of r.grads.values()) expect(g.every((x) => x === 0)).toBe(true);
    await full.release();
  });
});
