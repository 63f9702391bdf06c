import { trainCentralized } from '../../src/training/centralized.js';
import { config } from '../helpers/federation.js';

// Eight prompts with short free-text answers, learnt by heart by the tiny model.
const pairs = [
  'red apple',
  'blue sky',
  'green leaf',
  'white snow',
  'black coal',
  'yellow sun',
  'grey rock',
  'pink rose',
].map((s) => {
  const [colour, thing] = s.split(' ');
  return { prompt: `${thing}\ncolour:`, completion: ` ${colour} ${thing}` };
});

test('task generate: greedy decoding with the KV cache is scored by ROUGE-L F1 and exact match, and exact match equals the teacher-forced example accuracy', async () => {
  const cfg = config(`
seed: 1
model: {preset: tiny, max_seq_len: 64}
optimizer: {lr: 0.01, grad_clip: 1}
schedule: {warmup_steps: 5}
data: {task: generate, batch_size: 8, seq_len: 32}
eval: {max_new_tokens: 16}
federation: {clients: 1, rounds: 1, local_steps: 120}
`);
  const s = await trainCentralized(cfg, { quiet: true, data: { silos: [pairs], test: pairs } });
  const g = s.generation!;
  expect(g.examples).toBe(8);
  expect(g.samples.map((x) => x.reference)).toEqual(pairs.map((p) => p.completion.trim()));
  // Learnt by heart: most answers come back word for word.
  expect(g.exact_match).toBeGreaterThanOrEqual(0.75);
  expect(g.rouge_l_f1).toBeGreaterThanOrEqual(g.exact_match);
  // Every completion token (EOS included) right when fed the reference <=> greedy decoding writes the reference.
  expect(g.exact_match).toBeCloseTo(s.eval.accuracy, 12);
}, 120000);
