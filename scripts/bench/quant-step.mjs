#!/usr/bin/env node
// `npm run bench -- quant-step [--shapes smollm2-135m,qwen2.5-0.5b] [--dtypes float32,float16,int8,int4]
//   [--layers N] [--steps 3] [--targets q,v]`
//
// One LoRA step (forward + backward, LoRA r 8 on --targets) of the server's trunk at real model
// shapes (random weights; every block but 2 + 2 left on the clients, as real-shapes splits them),
// 8 x 128 tokens, 2 ORT threads, with the frozen base held as --dtypes. Each (shape, dtype) runs in
// its own process: peak RSS is that process's maximum resident set, the weights made one tensor at
// a time (a quantized base never exists in float32 as a whole). Seconds per step: median of --steps
// after one warm-up (which compiles and pays ORT's first allocations).
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dist, median, writeResult } from './common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const SHAPES = {
  'smollm2-135m': {
    model_type: 'llama',
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    attention_bias: false,
    rope_theta: 100000,
  },
  'qwen2.5-0.5b': {
    model_type: 'qwen2',
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    attention_bias: true,
    rope_theta: 1000000,
  },
};
const [B, S] = [8, 128];

async function child(shape, dtype, layers, steps, targets) {
  const { PRESETS } = await import(dist('model/config.js'));
  const { baseParamShapes, addPeftParams } = await import(dist('model/params.js'));
  const { partOwns } = await import(dist('model/partition.js'));
  const { quantize } = await import(dist('model/quantize.js'));
  const { floatsToHalves } = await import(dist('util/half.js'));
  const { PartExecutor } = await import(dist('training/part-executor.js'));
  const { Rng } = await import(dist('util/rng.js'));
  const base = SHAPES[shape];
  const config = {
    ...PRESETS.tiny,
    ...base,
    vocab_size: 1024,
    max_position_embeddings: 2048,
    tie_word_embeddings: true,
  };
  if (layers) config.num_hidden_layers = layers + 4;
  const split = { head_blocks: 2, tail_blocks: 2 };
  const peft = { method: 'lora', lora: { rank: 8, alpha: 16, dropout: 0, targets }, prefix: { length: 0 } };
  const trunk = partOwns('trunk', config, split);
  const rng = new Rng(1);
  const store = new Map();
  for (const [name, shp] of baseParamShapes(config)) {
    if (!trunk(name)) continue;
    const n = shp.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = name.includes('norm') ? 1 : rng.normal() * 0.02;
    const proj = /_proj\.weight$/.test(name);
    if (proj && (dtype === 'int8' || dtype === 'int4'))
      store.set(name, { shape: shp, quant: quantize(data, shp, dtype === 'int8' ? 8 : 4, 'int8') });
    else if (proj && dtype === 'float16') store.set(name, { shape: shp, half: floatsToHalves(data) });
    else store.set(name, { shape: shp, data });
  }
  addPeftParams(store, config, peft, 1);
  for (const n of [...store.keys()]) if (!trunk(n)) store.delete(n);
  const ex = new PartExecutor('trunk', config, split, peft, store, { threads: 2 });
  const d = config.hidden_size;
  const hA = { dtype: 'float32', shape: [B, S, d], data: Float32Array.from({ length: B * S * d }, () => rng.normal()) };
  const up = {
    dtype: 'float32',
    shape: [B, S, d],
    data: Float32Array.from({ length: B * S * d }, () => rng.normal() * 1e-3),
  };
  const times = [];
  for (let s = 0; s < steps + 1; s++) {
    const t0 = performance.now();
    await ex.forward(hA, true);
    await ex.backward(hA, up);
    if (s > 0) times.push((performance.now() - t0) / 1000);
  }
  const steadyRss = process.memoryUsage().rss / 2 ** 20;
  await ex.release();
  return {
    shape,
    dtype,
    trunk_layers: config.num_hidden_layers - 4,
    seconds_per_step: +median(times).toFixed(3),
    steps: times.map((t) => +t.toFixed(3)),
    peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    rss_after_steps_mib: Math.round(steadyRss),
  };
}

function save(rows) {
  writeResult('quant-step', {
    setup: {
      tokens: `${B} x ${S}`,
      lora: { rank: 8, targets: arg('--targets', 'q,v') },
      threads: 2,
      split: 'trunk = all blocks but 2 + 2',
    },
    note: 'measured on a host shared with other sessions (load averages per row): compare rows of one run only',
    rows,
  });
}

if (process.argv[2] === '--child') {
  const [shape, dtype, layers, steps, targets] = process.argv.slice(3);
  const r = await child(shape, dtype, Number(layers), Number(steps), targets.split(','));
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
} else {
  const shapes = arg('--shapes', 'smollm2-135m,qwen2.5-0.5b').split(',');
  const dtypes = arg('--dtypes', 'float32,float16,int8,int4').split(',');
  const [layers, steps, targets] = [arg('--layers', '0'), arg('--steps', '3'), arg('--targets', 'q,v')];
  const rows = [];
  for (const shape of shapes)
    for (const dtype of dtypes) {
      const load = loadavg()[0];
      const r = spawnSync(
        process.execPath,
        [fileURLToPath(import.meta.url), '--child', shape, dtype, layers, steps, targets],
        {
          encoding: 'utf8',
          env: process.env,
          maxBuffer: 1 << 26,
        },
      );
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) throw new Error(`${shape} ${dtype}: ${r.stderr.slice(-2000)}`);
      rows.push({ ...JSON.parse(line.slice(7)), load_average_at_start: +load.toFixed(1) });
      console.log(JSON.stringify(rows[rows.length - 1]));
      save(rows); // after every row: a run cut short keeps what it measured
    }
}
