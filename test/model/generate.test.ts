import { PRESETS } from '../../src/model/config.js';
import { addPeftParams, initParams, type PeftConfig } from '../../src/model/params.js';
import { BatchGenerator, buildPrefill, generate, LocalStepper, sampleToken } from '../../src/model/generate.js';
import { PartDecoder } from '../../src/model/part-decoder.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { tensor } from '../../src/runtime/tensor.js';
import { Rng } from '../../src/util/rng.js';

const config = { ...PRESETS.tiny };

async function greedyWithoutCache(
  store: ReturnType<typeof initParams>,
  peft: PeftConfig,
  prompt: number[],
  n: number,
): Promise<number[]> {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const g = await CompiledGraph.create(
      buildPrefill(config, peft, store, seq.length, {
        part: 'full',
        split: { head_blocks: 0, tail_blocks: 0 },
        batch: 1,
        frozen: 'initializer',
      }),
      { threads: 1 },
    );
    const select = new Float32Array(seq.length);
    select[seq.length - 1] = 1;
    const r = await g.run({
      tokens: tensor('int64', [1, seq.length], seq),
      select: tensor('float32', [1, 1, seq.length], select),
    });
    seq.push(sampleToken(r.logits.data as Float32Array, { temperature: 0, topK: 0 }, new Rng(0)));
    await g.release();
  }
  return seq.slice(prompt.length);
}

describe('generation with a KV cache', () => {
  test.each(['full', 'prefix'] as const)(
    '%s: cached greedy decoding equals recomputing the whole sequence',
    async (method) => {
      const peft: PeftConfig = {
        method,
        lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q'] },
        prefix: { length: 3 },
      };
      const store = initParams(config, 21);
      addPeftParams(store, config, peft, 21);
      // Larger weights than init so the greedy path is not flat.
      for (const [, p] of store) for (let i = 0; i < p.data.length; i++) p.data[i] *= 4;
      const prompt = [256, 72, 101, 108, 108, 111];
      const cached = await generate(
        config,
        peft,
        store,
        prompt,
        { maxNewTokens: 8, temperature: 0, topK: 0, seed: 1 },
        { threads: 1 },
      );
      expect(cached).toHaveLength(8);
      expect(cached).toEqual(await greedyWithoutCache(store, peft, prompt, 8));
    },
  );

  // Decode steps attend to the cache grouped by KV head, segment by segment (llama.ts,
  // groupedAttention); the whole-sequence program concatenates and repeats keys. Same numbers.
  test.each(['full', 'prefix', 'lora'] as const)(
    "%s: each decode step's logits equal the whole sequence's (grouped-query attention, 4 heads on 2 KV heads)",
    async (method) => {
      const peft: PeftConfig = {
        method,
        lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q', 'v'] },
        prefix: { length: 2 },
      };
      const store = initParams(config, 5);
      addPeftParams(store, config, peft, 5);
      for (const [, p] of store) for (let i = 0; i < p.data.length; i++) p.data[i] *= 3;
      const seq = [256, 84, 104, 101, 32, 119, 104, 97, 108, 101];
      const P = 4,
        cacheLen = seq.length;
      const stepper = new LocalStepper(
        new PartDecoder(config, peft, store, 'full', { head_blocks: 0, tail_blocks: 0 }, cacheLen, { threads: 1 }),
        1,
        P,
      );
      const V = config.vocab_size;
      let worst = 0;
      try {
        await stepper.prefill([seq.slice(0, P)]);
        for (let t = P; t < seq.length; t++) {
          const stepLogits = await stepper.decode([seq[t]], [t]);
          const g = await CompiledGraph.create(
            buildPrefill(config, peft, store, t + 1, {
              part: 'full',
              split: { head_blocks: 0, tail_blocks: 0 },
              batch: 1,
              frozen: 'initializer',
            }),
            { threads: 1 },
          );
          const select = new Float32Array(t + 1);
          select[t] = 1;
          const whole = (
            await g.run({
              tokens: tensor('int64', [1, t + 1], seq.slice(0, t + 1)),
              select: tensor('float32', [1, 1, t + 1], select),
            })
          ).logits.data as Float32Array;
          await g.release();
          for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(stepLogits[i] - whole[i]));
        }
      } finally {
        await stepper.release();
      }
      expect(worst).toBeLessThan(1e-4);
    },
  );

  test.each(['full', 'prefix'] as const)(
    '%s: a batch of prompts of different lengths decodes as each prompt alone',
    async (method) => {
      const peft: PeftConfig = {
        method,
        lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q'] },
        prefix: { length: 2 },
      };
      const store = initParams(config, 5);
      addPeftParams(store, config, peft, 5);
      for (const [, p] of store) for (let i = 0; i < p.data.length; i++) p.data[i] *= 4;
      const prompts = [[256, 72, 101], [256, 10, 20, 30, 40, 50, 60], [256]];
      const eos = 33;
      const o = { maxNewTokens: 6, temperature: 0, topK: 0, seed: 1, eos };
      const alone = [];
      for (const p of prompts) alone.push(await generate(config, peft, store, p, o, { threads: 1 }));
      // Four rows for three prompts: the spare row is padding and must not disturb the others.
      const g = await BatchGenerator.create(
        config,
        peft,
        store,
        { batch: 4, promptLen: 8, maxNewTokens: 6 },
        { threads: 1 },
      );
      try {
        expect(await g.run(prompts, o)).toEqual(alone);
        expect(await g.run(prompts.slice(1), o)).toEqual(alone.slice(1)); // reused for another batch
      } finally {
        await g.release();
      }
    },
  );

  test('sampling honours top-k and the seed', () => {
    const logits = Float32Array.from([0, 5, 4.9, -3, 1]);
    const a = Array.from({ length: 50 }, (_, i) => sampleToken(logits, { temperature: 1, topK: 2 }, new Rng(i)));
    expect(new Set(a)).toEqual(new Set([1, 2]));
    expect(sampleToken(logits, { temperature: 1, topK: 0 }, new Rng(3))).toBe(
      sampleToken(logits, { temperature: 1, topK: 0 }, new Rng(3)),
    );
  });
});
