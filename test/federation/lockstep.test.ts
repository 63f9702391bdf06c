import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peftOf, resolveModel, type ExperimentData } from '../../src/config/experiment.js';
import type { ExperimentConfig } from '../../src/config/schema.js';
import { BatchStream } from '../../src/data/batches.js';
import { trainableData } from '../../src/model/params.js';
import { keygen } from '../../src/security/pki.js';
import type { TensorData } from '../../src/runtime/tensor.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { clipAndApply, createOptimizer, globalNorm, learningRate } from '../../src/training/optimizer.js';
import { CLIENT_IDS, config, federate, TINY_RUN } from '../helpers/federation.js';

// Lockstep mode (src/server/modes/lockstep.ts): every step the trunk sees the clients' batches
// concatenated and the clients step with the mean of their part gradients, so the federation is one
// model trained on the union batch. Clipping is active (far below the gradient norm), so every step
// also tests the one joint norm across trunk and parts.
const base = TINY_RUN.replace('grad_clip: 0', 'grad_clip: 0.05').replace('max_batches: 3', 'max_batches: 1');
const federation = 'federation: {mode: lockstep, clients: 2, rounds: 2, local_steps: 3}\n';

const concat = (ts: TensorData[]): TensorData => {
  const data = new (ts[0].data.constructor as new (n: number) => TensorData['data'])(
    ts.reduce((a, t) => a + t.data.length, 0),
  );
  let at = 0;
  for (const t of ts) {
    (data as Float32Array).set(t.data as Float32Array, at);
    at += t.data.length;
  }
  return { ...ts[0], shape: [ts.reduce((a, t) => a + t.shape[0], 0), ...ts[0].shape.slice(1)], data } as TensorData;
};

/** Centralized training of the unsplit model on each step's union batch (client 0's rows, then client 1's). */
async function unionTraining(cfg: ExperimentConfig, data: ExperimentData, steps: number) {
  const { config: model, store, tokenizer } = resolveModel(cfg);
  const runtime = { device: cfg.runtime.device, threads: cfg.runtime.threads, arena: cfg.runtime.memory_arena };
  const full = new PartExecutor('full', model, cfg.split, peftOf(cfg), store, runtime);
  const params = new Map(full.trainable.map((n) => [n, trainableData(store.get(n)!, n)]));
  const optimizer = createOptimizer(cfg.optimizer);
  const streams = data.silos.map((s) => new BatchStream(s, tokenizer, cfg.data.batch_size, cfg.data.seq_len, cfg.seed));
  const out: { loss: number; labelCounts: number[] }[] = [];
  for (let step = 0; step < steps; step++) {
    const batches = streams.map((s) => s.next());
    const r = await full.step(concat(batches.map((b) => b.tokens)), concat(batches.map((b) => b.labels)));
    const lr = learningRate(cfg.optimizer.lr, cfg.schedule, step, steps);
    clipAndApply(optimizer, params, r.grads, globalNorm(r.grads.values()), cfg.optimizer.grad_clip, lr);
    out.push({ loss: r.loss, labelCounts: batches.map((b) => b.labelCount) });
  }
  await full.release();
  return out;
}

/** Each step's loss over the union batch: the clients' losses weighted by their labelled tokens. */
const unionLosses = (clientLosses: number[][], steps: { labelCounts: number[] }[]) =>
  steps.map(({ labelCounts }, k) => {
    const total = labelCounts.reduce((a, b) => a + b, 0);
    return clientLosses.reduce((a, l, i) => a + (l[k] * labelCounts[i]) / total, 0);
  });

test('lockstep mode, 2 clients: the same per-step losses as centralized training on the union batch', async () => {
  const cfg = config(base + federation + 'security: {tls: false, payload_encryption: false}\n');
  const seen: string[] = [];
  const { results, data, summary } = await federate(cfg, {
    audit: (_id, m) => {
      if (m.kind === 'partGrad') seen.push(m.partGrad!.tensor!.name);
    },
  });
  expect(summary.mode).toBe('lockstep');
  expect(seen).toHaveLength(12);
  const central = await unionTraining(cfg, data, 6);
  const federated = unionLosses(
    results.map((r) => r.losses),
    central,
  );
  expect(federated).toHaveLength(6);
  federated.forEach((l, k) => expect(Math.abs(l - central[k].loss) / central[k].loss).toBeLessThan(1e-5));
  // One model: both clients end with the same parts, so they score the held-out set alike.
  expect(results[0].eval!.loss).toBeCloseTo(results[1].eval!.loss, 6);
}, 120_000);

test('lockstep mode with secure aggregation and a hidden aggregate: the server sees only padded words, the losses stay', async () => {
  const root = mkdtempSync(join(tmpdir(), 'flglm-lockstep-'));
  try {
    keygen({
      out: join(root, 'pki'),
      clients: CLIENT_IDS.slice(0, 2),
      serverName: 'localhost',
      serverIps: ['127.0.0.1'],
      days: 1,
      keyBits: 2048,
    });
    // Payload encryption off: the audit then reads exactly the bytes the server decodes.
    const tls = 'security: {tls: true, payload_encryption: false}\n';
    // One round: its round-end secure aggregation rounds the parts to its own 2^-16 fixed point.
    const oneRound = base + federation.replace('rounds: 2', 'rounds: 1') + tls;
    const plain = await federate(config(oneRound), { kitRoot: join(root, 'pki') });
    const words: Uint32Array[] = [];
    const secure = await federate(
      config(oneRound + 'privacy: {secure_aggregation: {enabled: true}, hide_aggregate: true}\n'),
      {
        kitRoot: join(root, 'pki'),
        audit: (_id, m) => {
          if (m.kind !== 'partGrad') return;
          const t = m.partGrad!.tensor!;
          expect(t.name).toBe('part_grad/masked');
          words.push(new Uint32Array(Uint8Array.from(t.data).buffer));
        },
      },
    );
    expect(words).toHaveLength(6);
    // A gradient's own fixed-point words have high limbs near 0 (|n_i g| < 2^19, so |hi| < 2^31 / 2^16 ...
    // and in practice a few thousand): padded, they are uniform over 2^32 and almost none are.
    for (const w of words) {
      let small = 0;
      for (let i = 1; i < w.length; i += 2) if (Math.abs(w[i] | 0) < 1 << 20) small++;
      expect(small / (w.length / 2)).toBeLessThan(0.01);
    }
    // The same training: the masked sum is exact up to its 2^-28 fixed point.
    plain.results.forEach((r, i) =>
      r.losses.forEach((l, k) => expect(Math.abs(l - secure.results[i].losses[k]) / l).toBeLessThan(1e-5)),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}, 180_000);

test('lockstep mode with secure aggregation refuses a visible aggregate: its pads come from the federation secret', async () => {
  const { parseConfigText } = await import('../../src/config/load.js');
  const r = parseConfigText(base + federation + 'privacy: {secure_aggregation: {enabled: true}}\n');
  expect(r.ok ? [] : r.problems.map((p) => p.message).join('\n')).toMatch(
    /lockstep mode pads every step's part gradients .* set privacy.hide_aggregate: true too/,
  );
});
