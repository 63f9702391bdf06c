// Centralized step vs a 1-client split step over loopback gRPC (separate server and client
// processes): plaintext, mutual TLS, mutual TLS + payload AES-GCM. Steady-state per-step
// throughput from the step timestamps of rounds 2+ (round 1 compiles the graphs).
// Usage: npm run bench -- split-overhead [runs=3]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dist, runExperiment, stats, stepGaps, writeResult } from './common.mjs';

const runs = Number(process.argv[2] ?? 3);
const B = 8, S = 128;
const { PRESETS } = await import(dist('model/config.js'));
const { initParams } = await import(dist('model/params.js'));
const { PartExecutor } = await import(dist('training/part-executor.js'));
const { tensor } = await import(dist('runtime/tensor.js'));
const { AdamW } = await import(dist('training/optimizer.js'));

async function centralized() {
  const c = PRESETS.small, store = initParams(c, 1);
  const peft = { method: 'full', lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q'] }, prefix: { length: 4 } };
  const m = new PartExecutor('full', c, { head_blocks: 1, tail_blocks: 1 }, peft, store, {});
  const ids = tensor('int64', [B, S], Array.from({ length: B * S }, (_, i) => (i * 7) % 256));
  const labels = tensor('int64', [B * S], Array.from({ length: B * S }, (_, i) => (i * 13) % 256));
  const opt = new AdamW({ name: 'adamw', lr: 1e-3, weight_decay: 0.01, betas: [0.9, 0.999], eps: 1e-8, momentum: 0, grad_clip: 1, grad_accum: 1 });
  const params = new Map([...store].map(([k, v]) => [k, v.data]));
  await m.step(ids, labels);
  const xs = [];
  for (let i = 0; i < 8; i++) { const t0 = performance.now(); const r = await m.step(ids, labels); opt.apply(params, r.grads, 1e-3); xs.push((performance.now() - t0) / 1000); }
  await m.release();
  return stats(xs).median;
}

function stepSeconds(metrics) {
  return stats(stepGaps(metrics)).median;
}

const variants = {
  plaintext: 'security: {tls: false, payload_encryption: false}',
  mtls: 'security: {tls: true, payload_encryption: false}',
  'mtls+aes-gcm': 'security: {tls: true, payload_encryption: true}',
};
const result = { command: `npm run bench -- split-overhead ${runs}`, model: 'small', batch: B, seq: S, activation_mib: (B * S * 256 * 4) / 2 ** 20, centralized_tokens_per_s: [], split: {} };
for (let r = 0; r < runs; r++) {
  result.centralized_tokens_per_s.push((B * S) / (await centralized()));
  for (const [name, sec] of Object.entries(variants)) {
    const yaml = `name: overhead\nseed: 1\nmodel: {preset: small}\ndata: {batch_size: ${B}, seq_len: ${S}, max_examples: 200}\nfederation: {mode: sequential, clients: 1, rounds: 3, local_steps: 8}\neval: {max_batches: 1}\n${sec}\n`;
    const { metrics } = await runExperiment(yaml, mkdtempSync(join(tmpdir(), 'flglm-bench-')));
    (result.split[name] ??= []).push((B * S) / stepSeconds(metrics));
    console.error(`run ${r + 1}/${runs} ${name}: ${result.split[name].at(-1).toFixed(0)} tokens/s`);
  }
}
const central = stats(result.centralized_tokens_per_s);
result.centralized = central;
result.ratio_to_centralized = Object.fromEntries(Object.entries(result.split).map(([k, xs]) => [k, stats(xs).median / central.median]));
result.split = Object.fromEntries(Object.entries(result.split).map(([k, xs]) => [k, stats(xs)]));
console.log(JSON.stringify(result, null, 2));
writeResult('split-overhead', result);
