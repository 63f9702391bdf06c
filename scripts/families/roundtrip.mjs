#!/usr/bin/env node
// The families' round trip through transformers: for each fixture (test/fixtures/families), a
// federated LoRA run with the real CLI (`flglm run`: server and 2 clients on 127.0.0.1), its exports
// (model-hf/: LoRA merged; adapter/: PEFT; `flglm export --onnx`), then transformers loads the merged folder and the base +
// PEFT adapter and scores the fixture's tokens, which flglm scores too. Needs `npm run build` (dist/)
// and Python with torch, transformers and peft.
//
//   node scripts/families/roundtrip.mjs [--python /work/torchenv/bin/python] [--out bench-results/families-roundtrip.json]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, resolve } from 'node:path';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const python = arg('--python', '/work/torchenv/bin/python');
const out = resolve(arg('--out', 'bench-results/families-roundtrip.json'));
const root = resolve('.');
const dist = (p) => join(root, 'dist', 'src', p);
const { loadModelFolder } = await import(dist('training/model-folder.js'));
const { PartExecutor } = await import(dist('training/part-executor.js'));
const { tensor } = await import(dist('runtime/tensor.js'));
const FIXTURES = join(root, 'test', 'fixtures', 'families');
const FAMILIES = ['llama31', 'smollm2', 'mistral', 'gemma2', 'gemma3', 'phi3', 'qwen3'];
const TARGETS = { phi3: '[qkv, o, gate_up, down]' };

async function score(dir, ref) {
  const m = loadModelFolder(dir);
  const ex = new PartExecutor('full', m.config, { head_blocks: 1, tail_blocks: 1 }, m.peft, m.store, { threads: 1 });
  const [b, s] = [ref.tokens.length, ref.tokens[0].length];
  const r = await ex.evaluate(tensor('int64', [b, s], ref.tokens.flat()), tensor('int64', [b * s], ref.labels.flat()));
  await ex.release();
  return r.loss;
}

const work = mkdtempSync(join(tmpdir(), 'flglm-families-roundtrip-'));
const runs = [];
for (const name of FAMILIES) {
  const dir = join(work, name);
  const cfg = join(work, `${name}.yaml`);
  writeFileSync(
    cfg,
    `name: ${name}\nseed: 3\nmodel: {hf_path: ${join(FIXTURES, name)}}\n` +
      `finetune: {method: lora, lora: {rank: 4, alpha: 8, targets: ${TARGETS[name] ?? '[q, k, v, o, gate, up, down]'}}}\n` +
      'optimizer: {lr: 0.02}\ndata: {task: classify, dataset: spam-assassin, partition: natural, batch_size: 2, seq_len: 24, max_examples: 24}\n' +
      'federation: {mode: sequential, clients: 2, rounds: 2, local_steps: 2}\neval: {max_batches: 1}\nsecurity: {tls: false, payload_encryption: false}\n',
  );
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(root, 'bin', 'flglm'), 'run', cfg, '--out', dir, '--quiet'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`${name}: flglm run failed: ${r.stderr}`);
  const onnx = spawnSync(
    process.execPath,
    [
      join(root, 'bin', 'flglm'),
      'export',
      '--model',
      join(dir, 'model'),
      '--onnx',
      join(dir, 'onnx'),
      '--cache-len',
      '32',
    ],
    { encoding: 'utf8' },
  );
  if (onnx.status !== 0 || !existsSync(join(dir, 'onnx', 'decoder.onnx')))
    throw new Error(`${name}: flglm export --onnx failed: ${onnx.stderr}`);
  const ref = JSON.parse(readFileSync(join(FIXTURES, name, 'reference.json'), 'utf8'));
  const flglm = {
    lora_checkpoint: await score(join(dir, 'model'), ref),
    merged_folder: await score(join(dir, 'model-hf'), ref),
  };
  runs.push({ name, run_seconds: (Date.now() - t0) / 1000, dir, flglm });
  console.log(`${name}: flglm LoRA ${flglm.lora_checkpoint.toFixed(6)}, merged ${flglm.merged_folder.toFixed(6)}`);
}

const check = spawnSync(python, [join(root, 'scripts', 'families', 'roundtrip_check.py')], {
  input: JSON.stringify(runs.map((r) => ({ name: r.name, base: join(FIXTURES, r.name), run: r.dir }))),
  encoding: 'utf8',
});
if (check.status !== 0) throw new Error(`transformers check failed: ${check.stderr}`);
const hf = JSON.parse(check.stdout);
let worst = 0;
for (const r of runs) {
  r.transformers = hf[r.name];
  r.max_abs_diff = Math.max(
    ...[r.flglm.merged_folder, r.transformers.merged_folder, r.transformers.base_plus_peft_adapter].map((x) =>
      Math.abs(x - r.flglm.lora_checkpoint),
    ),
  );
  worst = Math.max(worst, r.max_abs_diff);
  delete r.dir;
  console.log(
    `${r.name}: transformers merged ${r.transformers.merged_folder.toFixed(6)}, base + PEFT ${r.transformers.base_plus_peft_adapter.toFixed(6)}, max |diff| ${r.max_abs_diff.toExponential(2)}`,
  );
}
const result = {
  benchmark: 'families-roundtrip',
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, date: new Date().toISOString() },
  command: 'node scripts/families/roundtrip.mjs',
  what: 'federated LoRA (flglm run, 2 clients, 2 rounds x 2 steps) on each fixture; loss on the fixture tokens of the LoRA checkpoint and merged export in flglm, and of the merged export and base + PEFT adapter in transformers',
  transformers: hf.versions,
  pass: worst < 1e-4,
  worst_abs_diff: worst,
  runs,
};
writeFileSync(`${out}.tmp`, JSON.stringify(result, null, 2) + '\n');
renameSync(`${out}.tmp`, out);
console.log(`${result.pass ? 'PASS' : 'FAIL'}: worst |loss difference| ${worst.toExponential(2)} -> ${out}`);
process.exit(result.pass ? 0 : 1);
