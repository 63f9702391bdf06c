import * as op from '../../src/graph/ops.js';
import { PRESETS, type ModelConfig } from '../../src/model/config.js';
import { attention, embed, mlp, norm } from '../../src/model/llama.js';
import { LLAMA_TRAITS, llamaFamily } from '../../src/model/families/llama.js';
import { decoderFamily } from '../../src/model/families/decoder.js';
import { familyOf, registerModelFamily } from '../../src/model/families/registry.js';
import type { ModelFamily } from '../../src/model/families/family.js';
import { fromHfConfig } from '../../src/model/hf-config.js';
import { initParams, layerPrefix, type PeftConfig } from '../../src/model/params.js';
import { IGNORE_INDEX } from '../../src/model/partition.js';
import { generate } from '../../src/model/generate.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { tensor } from '../../src/runtime/tensor.js';

// Adding a model family, done once as docs/architecture.md says: one ModelFamily object (here a
// GPT-J / GPT-NeoX-style parallel residual block: x + attn(norm(x)) + mlp(norm(x)), without the
// second norm) and one registration. Training parts, the split and generation all pick it up.
const parallel: ModelFamily = {
  ...llamaFamily,
  modelTypes: ['test-parallel'],
  architecture: 'TestParallelForCausalLM',
  paramShapes: (c) => llamaFamily.paramShapes(c).filter(([n]) => !n.endsWith('post_attention_layernorm.weight')),
  decode(ctx, input, span, cache) {
    let h = span.embeds ? embed(ctx, input) : input;
    for (let l = span.layers[0]; l < span.layers[1]; l++) {
      const normed = norm(ctx, h, `${layerPrefix(l)}.input_layernorm.weight`);
      h = op.add(op.add(h, attention(ctx, l, normed, cache?.(l))), mlp(ctx, l, normed));
    }
    return h;
  },
};
registerModelFamily(parallel);

const config: ModelConfig = { ...PRESETS.tiny, model_type: 'test-parallel' };
const peft: PeftConfig = {
  method: 'full',
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q'] },
  prefix: { length: 2 },
};
const split = { head_blocks: 1, tail_blocks: 1 };
const B = 2,
  S = 8;
const tokens = tensor(
  'int64',
  [B, S],
  Array.from({ length: B * S }, (_, i) => (i * 37) % 256),
);
const labels = tensor(
  'int64',
  [B * S],
  Array.from({ length: B * S }, (_, i) => ((i + 1) % S === 0 ? IGNORE_INDEX : ((i + 1) * 37) % 256)),
);

test('a registered family is chosen by model_type: its weights, its forward, split == unsplit, generation', async () => {
  expect(familyOf('test-parallel')).toBe(parallel);
  expect(fromHfConfig({ ...PRESETS.tiny, model_type: 'test-parallel' }).model_type).toBe('test-parallel');
  const store = initParams(config, 5);
  expect([...store.keys()].some((n) => n.includes('post_attention_layernorm'))).toBe(false);

  const full = new PartExecutor('full', config, split, peft, store, { threads: 1 });
  const ref = await full.step(tokens, labels);
  const head = new PartExecutor('head', config, split, peft, store, { threads: 1 });
  const trunk = new PartExecutor('trunk', config, split, peft, store, { threads: 1 });
  const tail = new PartExecutor('tail', config, split, peft, store, { threads: 1 });
  const t = await tail.step(await trunk.forward(await head.forward(tokens)), labels);
  expect(Math.abs(t.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);

  // The same weights through the LLaMA forward (given the missing norm as ones) score differently:
  // the family's own forward really ran.
  const asLlama = new Map(store);
  for (let l = 0; l < config.num_hidden_layers; l++)
    asLlama.set(`${layerPrefix(l)}.post_attention_layernorm.weight`, {
      shape: [config.hidden_size],
      data: new Float32Array(config.hidden_size).fill(1),
    });
  const llama = new PartExecutor('full', { ...config, model_type: 'llama' }, split, peft, asLlama, { threads: 1 });
  expect(Math.abs((await llama.step(tokens, labels)).loss - ref.loss)).toBeGreaterThan(1e-4);

  const ids = await generate(
    config,
    peft,
    store,
    [1, 2, 3],
    { maxNewTokens: 4, temperature: 0, topK: 0, seed: 1 },
    { threads: 1 },
  );
  expect(ids).toHaveLength(4);
  for (const e of [full, head, trunk, tail, llama]) await e.release();
});

// A family that differs from LLaMA only in its traits is data: here Gemma-style norms (1 + w, also
// after each sublayer) on LLaMA's config table. Its weights and forward follow; split == unsplit.
test('a family as data: its traits give its weights and its forward', async () => {
  registerModelFamily(
    decoderFamily({
      modelTypes: ['test-sandwich'],
      architecture: 'TestSandwichForCausalLM',
      traits: { ...LLAMA_TRAITS, norm: 'one-plus-weight', sandwichNorms: true },
      config: llamaFamily.config,
    }),
  );
  const c: ModelConfig = { ...PRESETS.tiny, model_type: 'test-sandwich' };
  const store = initParams(c, 3);
  expect(store.get('model.layers.0.post_feedforward_layernorm.weight')!.data.every((x) => x === 0)).toBe(true);
  const full = new PartExecutor('full', c, split, peft, store, { threads: 1 });
  const ref = await full.step(tokens, labels);
  const parts = (['head', 'trunk', 'tail'] as const).map(
    (p) => new PartExecutor(p, c, split, peft, store, { threads: 1 }),
  );
  const t = await parts[2].step(await parts[1].forward(await parts[0].forward(tokens)), labels);
  expect(Math.abs(t.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
  for (const e of [full, ...parts]) await e.release();
});

test('an unknown model_type is refused naming the supported ones', () => {
  expect(() => fromHfConfig({ ...PRESETS.tiny, model_type: 'gpt2' })).toThrow(
    /model_type "gpt2" is not supported \(supported: llama, qwen2.*\); a new family is one file in src\/model\/families/,
  );
});
