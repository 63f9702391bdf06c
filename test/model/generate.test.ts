import { PRESETS } from '../../src/model/config.js';
import { addPeftParams, initParams, type PeftConfig } from '../../src/model/params.js';
import { BatchGenerator, buildPrefill, generate, sampleToken } from '../../src/model/generate.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { tensor } from '../../src/runtime/tensor.js';
import { Rng } from '../../src/util/rng.js';

const config = { ...PRESETS.tiny };

async function greedyWithoutCache(store: ReturnType<typeof initParams>, peft: PeftConfig, prompt: number[], n: number): Promise<number[]> {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const g = await CompiledGraph.create(buildPrefill(config, peft, store, seq.length, { part: 'full', split: { head_blocks: 0, tail_blocks: 0 }, batch: 1, frozen: 'initializer' }), { threads: 1 });
    const select = new Float32Array(seq.length);
    select[seq.length - 1] = 1;
    const r = await g.run({ tokens: tensor('int64', [1, seq.length], seq), select: tensor('float32', [1, 1, seq.length], select) });
    seq.push(sampleToken(r.logits.data as Float32Array, { temperature: 0, topK: 0 }, new Rng(0)));
    await g.release();
  }
  return seq.slice(prompt.length);
}

describe('generation with a KV cache', () => {
  test.each(['full', 'prefix'] as const)('%s: cached greedy decoding equals recomputing the whole sequence', async (method) => {
    const peft: PeftConfig = { method, lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q'] }, prefix: { length: 3 } };
    const store = initParams(config, 21);
    addPeftParams(store, config, peft, 21);
    // Larger weights than init so the greedy path is not flat.
    for (const [, p] of store) for (let i = 0; i < p.data.length; i++) p.data[i] *= 4;
    const prompt = [256, 72, 101, 108, 108, 111];
    const cached = await generate(config, peft, store, prompt, { maxNewTokens: 8, temperature: 0, topK: 0, seed: 1 }, { threads: 1 });
    expect(cached).toHaveLength(8);
    expect(cached).toEqual(await greedyWithoutCache(store, peft, prompt, 8));
  });

  test.each(['full', 'prefix'] as const)('%s: a batch of prompts of different lengths decodes as each prompt alone', async (method) => {
    const peft: PeftConfig = { method, lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q'] }, prefix: { length: 2 } };
    const store = initParams(config, 5);
    addPeftParams(store, config, peft, 5);
    for (const [, p] of store) for (let i = 0; i < p.data.length; i++) p.data[i] *= 4;
    const prompts = [[256, 72, 101], [256, 10, 20, 30, 40, 50, 60], [256]];
    const eos = 33;
    const o = { maxNewTokens: 6, temperature: 0, topK: 0, seed: 1, eos };
    const alone = [];
    for (const p of prompts) alone.push(await generate(config, peft, store, p, o, { threads: 1 }));
    // Four rows for three prompts: the spare row is padding and must not disturb the others.
    const g = await BatchGenerator.create(config, peft, store, { batch: 4, promptLen: 8, maxNewTokens: 6 }, { threads: 1 });
    try {
      expect(await g.run(prompts, o)).toEqual(alone);
      expect(await g.run(prompts.slice(1), o)).toEqual(alone.slice(1)); // reused for another batch
    } finally {
      await g.release();
    }
  });

  test('sampling honours top-k and the seed', () => {
    const logits = Float32Array.from([0, 5, 4.9, -3, 1]);
    const a = Array.from({ length: 50 }, (_, i) => sampleToken(logits, { temperature: 1, topK: 2 }, new Rng(i)));
    expect(new Set(a)).toEqual(new Set([1, 2]));
    expect(sampleToken(logits, { temperature: 1, topK: 0 }, new Rng(3))).toBe(sampleToken(logits, { temperature: 1, topK: 0 }, new Rng(3)));
  });
});
