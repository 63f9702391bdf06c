// Centralized step vs a 1-client split step over loopback gRPC (separate server and client
// processes): plaintext, mutual TLS, mutual TLS + payload AES-GCM. Both sides are real CLI
// processes on the same data and config: `flglm train` (step gaps after the first two) and
// `flglm run` (step gaps of rounds 2+; round 1 compiles the graphs). Runs are interleaved, and
// the client's own account of where its step goes (its per-phase means) is kept per variant.
// Usage: npm run bench -- split-overhead [runs=3]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { centralizedSteps, median, runExperiment, stats, stepGaps, writeResult } from './common.mjs';

const runs = Number(process.argv[2] ?? 3);
const B = 8,
  S = 128;
const base = `seed: 1\nmodel: {preset: small}\ndata: {task: lm, dataset: sotu, partition: iid, batch_size: ${B}, seq_len: ${S}, max_examples: 200}\neval: {max_batches: 1}\n`;
const variants = {
  plaintext: 'security: {tls: false, payload_encryption: false}',
  mtls: 'security: {tls: true, payload_encryption: false}',
  'mtls+aes-gcm': 'security: {tls: true, payload_encryption: true}',
};

const result = {
  command: `npm run bench -- split-overhead ${runs}`,
  model: 'small',
  batch: B,
  seq: S,
  activation_mib: (B * S * 256 * 4) / 2 ** 20,
  centralized_tokens_per_s: [],
  split: {},
  client_phases_ms: {},
};
for (let r = 0; r < runs; r++) {
  result.centralized_tokens_per_s.push(
    (B * S) / median(centralizedSteps(`name: overhead-centralized\n${base}`, 20).gaps),
  );
  console.error(`run ${r + 1}/${runs} centralized: ${result.centralized_tokens_per_s.at(-1).toFixed(0)} tokens/s`);
  for (const [name, sec] of Object.entries(variants)) {
    const out = mkdtempSync(join(tmpdir(), 'flglm-bench-'));
    try {
      const { metrics } = await runExperiment(
        `name: overhead\n${base}federation: {mode: sequential, clients: 1, rounds: 3, local_steps: 8}\n${sec}\n`,
        out,
      );
      (result.split[name] ??= []).push((B * S) / median(stepGaps(metrics)));
      const client = JSON.parse(readFileSync(join(out, 'summaries', 'client-0.json'), 'utf8'));
      for (const [phase, s] of Object.entries(client.phases))
        ((result.client_phases_ms[name] ??= {})[phase] ??= []).push((1000 * s) / Math.max(1, client.steps - 1));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    console.error(`run ${r + 1}/${runs} ${name}: ${result.split[name].at(-1).toFixed(0)} tokens/s`);
  }
}
const central = stats(result.centralized_tokens_per_s);
result.centralized = central;
result.ratio_to_centralized = Object.fromEntries(
  Object.entries(result.split).map(([k, xs]) => [k, stats(xs).median / central.median]),
);
result.split = Object.fromEntries(Object.entries(result.split).map(([k, xs]) => [k, stats(xs)]));
result.client_phases_ms = Object.fromEntries(
  Object.entries(result.client_phases_ms).map(([k, ph]) => [
    k,
    Object.fromEntries(Object.entries(ph).map(([p, xs]) => [p, median(xs)])),
  ]),
);
console.log(JSON.stringify(result, null, 2));
writeResult('split-overhead', result);
