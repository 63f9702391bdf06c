import { mkdtempSync } from 'node:fs';
import { trainableData } from '../../src/model/params.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keygen } from '../../src/security/pki.js';
import { PRESETS } from '../../src/model/config.js';
import { trainCentralized } from '../../src/training/centralized.js';
import { resolveModel, peftOf } from '../../src/config/experiment.js';
import { BatchStream } from '../../src/data/batches.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { createOptimizer } from '../../src/training/optimizer.js';
import { tensor } from '../../src/runtime/tensor.js';
import { config, federate, TINY_RUN } from '../helpers/federation.js';
import { evalBatches } from '../../src/data/batches.js';
import { evaluateBatches } from '../../src/training/evaluate.js';
import { isPromptExample } from '../../src/data/examples.js';
import type { ExperimentConfig } from '../../src/config/schema.js';
import type { ExperimentData } from '../../src/config/experiment.js';

/** Eval loss of the untrained model (the same initial weights every client and the server start from). */
async function initialEvalLoss(cfg: ExperimentConfig, data: ExperimentData): Promise<number> {
  const { config: model, store, tokenizer } = resolveModel(cfg);
  const full = new PartExecutor('full', model, cfg.split, peftOf(cfg), store, { threads: 1 });
  const m = await evaluateBatches(
    evalBatches(data.test, tokenizer, cfg.data.batch_size, cfg.data.seq_len, cfg.eval.max_batches),
    (b) => full.evaluate(b.tokens, b.labels),
    data.test.some(isPromptExample),
  );
  await full.release();
  return m.loss;
}

const base = TINY_RUN;
const plain = 'security: {tls: false, payload_encryption: false}\n';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('federated split training over gRPC on 127.0.0.1', () => {
  test('sequential, 1 client: same per-step losses as centralized training', async () => {
    const cfg = config(base + plain + 'federation: {mode: sequential, clients: 1, rounds: 2, local_steps: 4}\n');
    const { results, data } = await federate(cfg);
    const central = await trainCentralized(cfg, { quiet: true, data });
    expect(results[0].losses).toHaveLength(central.losses.length);
    results[0].losses.forEach((l, i) => expect(Math.abs(l - central.losses[i]) / central.losses[i]).toBeLessThan(1e-4));
  });

  test.each(['sequential', 'hierarchical'])(
    '%s, 1 client, gradient clipping active: joint clipping keeps split equal to centralized',
    async (mode) => {
      // With a clip far below the gradient norm every step is clipped; clipping the trunk and the
      // client parts by their own norms would differ from centralized training from step 1.
      const cfg = config(
        base.replace('grad_clip: 0', 'grad_clip: 0.05') +
          plain +
          `federation: {mode: ${mode}, clients: 1, rounds: 2, local_steps: 4, sub_servers: 1}\n`,
      );
      const { results, data } = await federate(cfg);
      const central = await trainCentralized(cfg, { quiet: true, data });
      results[0].losses.forEach((l, i) =>
        expect(Math.abs(l - central.losses[i]) / central.losses[i]).toBeLessThan(1e-4),
      );
      expect(Math.abs(results[0].losses[7] - results[0].losses[0])).toBeGreaterThan(1e-3); // it trained
    },
  );

  test('batch, 3 clients: same losses as centralized steps on the concatenated batch', async () => {
    const cfg = config(
      `
seed: 5
model: {preset: tiny, max_seq_len: 64}
optimizer: {name: sgd, lr: 0.05, momentum: 0, weight_decay: 0, grad_clip: 0}
schedule: {warmup_steps: 0, decay: constant}
data: {task: lm, partition: iid, batch_size: 2, seq_len: 32, max_examples: 30}
federation: {mode: batch, clients: 3, rounds: 4, local_steps: 1, batch_clients: 4}
eval: {max_batches: 1}
` + plain,
    );
    const { results, data } = await federate(cfg);
    // Reference: one unsplit model, one SGD step per step on the three clients' batches concatenated.
    const { config: model, store, tokenizer } = resolveModel(cfg);
    const full = new PartExecutor('full', model, cfg.split, peftOf(cfg), store, { threads: 1 });
    const streams = data.silos.map(
      (silo) => new BatchStream(silo, tokenizer, cfg.data.batch_size, cfg.data.seq_len, cfg.seed),
    );
    const sgd = createOptimizer(cfg.optimizer);
    const params = new Map(full.trainable.map((n) => [n, trainableData(store.get(n)!, n)]));
    for (let step = 0; step < cfg.federation.rounds; step++) {
      const batches = streams.map((s) => s.next());
      const ids = batches.flatMap((b) => Array.from(b.tokens.data as BigInt64Array, Number));
      const labels = batches.flatMap((b) => Array.from(b.labels.data as BigInt64Array, Number));
      const r = await full.step(
        tensor('int64', [ids.length / cfg.data.seq_len, cfg.data.seq_len], ids),
        tensor('int64', [labels.length], labels),
      );
      const weights = batches.map((b) => b.labelCount);
      const federated =
        results.reduce((a, c, i) => a + c.losses[step] * weights[i], 0) / weights.reduce((a, b) => a + b, 0);
      expect(Math.abs(federated - r.loss) / r.loss).toBeLessThan(1e-4);
      sgd.apply(params, r.grads, cfg.optimizer.lr);
    }
    await full.release();
  });

  test.each(['sequential', 'batch', 'hierarchical'] as const)(
    '%s, 3 clients with mTLS and payload encryption: loss goes down, server never sees tokens or labels',
    async (mode) => {
      const pki = join(mkdtempSync(join(tmpdir(), 'flglm-fed-')), 'pki');
      keygen({
        out: pki,
        clients: ['alice', 'bob', 'carol'],
        serverName: 'localhost',
        serverIps: ['127.0.0.1'],
        days: 1,
        keyBits: 2048,
      });
      const cfg = config(base + `federation: {mode: ${mode}, clients: 3, rounds: 3, local_steps: 4, sub_servers: 2}\n`);
      const seen: { kind: string; names: string[]; encrypted: boolean[]; fields: string[] }[] = [];
      const { results, summary, data } = await federate(cfg, {
        kitRoot: pki,
        audit: (_id, m) => {
          const kind = m.kind!;
          const payload = m[kind] as {
            tensor?: { name: string; encrypted: boolean };
            tensors?: { name: string; encrypted: boolean }[];
          };
          const tensors = payload.tensor ? [payload.tensor] : (payload.tensors ?? []);
          seen.push({
            kind,
            names: tensors.map((t) => t.name),
            encrypted: tensors.map((t) => t.encrypted),
            fields: Object.keys(payload),
          });
        },
      });
      expect(summary.history.map((r) => r.clients.length)).toEqual([3, 3, 3]);
      // Sub-servers really run at the same time; a single trunk never overlaps itself.
      const overlap = summary.history.reduce((a, r) => a + r.replica_overlap_s, 0);
      if (mode === 'hierarchical') expect(overlap).toBeGreaterThan(0);
      else expect(overlap).toBe(0);
      const before = await initialEvalLoss(cfg, data);
      for (const r of results) {
        expect(r.eval).not.toBeNull();
        expect(r.eval!.loss).toBeLessThan(before);
        expect(mean(r.losses.slice(-4))).toBeLessThan(mean(r.losses.slice(0, 4)));
      }
      const names = new Set(seen.flatMap((s) => s.names));
      expect(names.has('tokens')).toBe(false);
      expect(names.has('labels')).toBe(false);
      expect([...names].filter((n) => !n.startsWith('model.') && !n.startsWith('lm_head')).sort()).toEqual([
        'grad_h_B',
        'h_A',
      ]);
      // Client parts only: embeddings, the first and last blocks, final norm, LM head. No trunk block.
      const layers = new Set(
        [...names].filter((n) => n.startsWith('model.layers.')).map((n) => Number(n.split('.')[2])),
      );
      expect([...layers].sort()).toEqual([0, 3]);
      expect(seen.every((s) => s.encrypted.every(Boolean))).toBe(true);
      expect(seen.every((s) => !s.fields.some((f) => /token|label(?!Count)/i.test(f)))).toBe(true);
    },
  );

  test.each([
    ['scaffold', 'keep', 'scaffold.delta_c.'],
    ['fedavg', 'average', 'optimizer.'],
    ['fedprox', 'keep', null],
    ['feddyn', 'keep', null],
  ])(
    'hierarchical, 2 clients, strategy %s with client_optimizer %s: any extra state goes up with the parts, loss goes down',
    async (name, clientOptimizer, prefix) => {
      const cfg = config(
        base +
          plain +
          `federation: {mode: hierarchical, clients: 2, rounds: 3, local_steps: 3, sub_servers: 2, strategy: {name: ${name}, client_optimizer: ${clientOptimizer}}}\n`,
      );
      const uploads: string[][] = [];
      const { results, summary, data } = await federate(cfg, {
        audit: (_id, m) => {
          if (m.kind === 'parameters') uploads.push(m.parameters!.tensors.map((t) => t.name));
        },
      });
      expect(summary.history.map((r) => r.clients.length)).toEqual([2, 2, 2]);
      expect(uploads).toHaveLength(6);
      for (const names of uploads) {
        if (prefix === null) {
          expect(names.every((n) => n.startsWith('model.') || n.startsWith('lm_head'))).toBe(true);
          continue;
        }
        const params = names.filter((n) => !n.startsWith(prefix));
        expect(names.filter((n) => n.startsWith(prefix)).length).toBeGreaterThanOrEqual(params.length);
      }
      const before = await initialEvalLoss(cfg, data);
      for (const r of results) expect(r.eval!.loss).toBeLessThan(before);
    },
  );

  test('update_encoding float16-delta: parameters travel as float16 both ways at half the bytes, and every client holds the same global parts', async () => {
    const run = async (encoding: string) => {
      const cfg = config(
        base +
          plain +
          `federation: {mode: hierarchical, clients: 2, rounds: 3, local_steps: 2, sub_servers: 2, update_encoding: ${encoding}}\n`,
      );
      const dtypes = new Set<string>();
      const r = await federate(cfg, {
        audit: (_id, m) => {
          if (m.kind === 'parameters') for (const t of m.parameters!.tensors) dtypes.add(t.dtype);
        },
      });
      return { ...r, dtypes, cfg };
    };
    const half = await run('float16-delta');
    const full = await run('float32');
    expect([...half.dtypes]).toEqual(['float16']);
    expect([...full.dtypes]).toEqual(['float32']);
    const up = (s: typeof half.summary) => s.history.reduce((a, r) => a + r.bytes_up, 0);
    const down = (s: typeof half.summary) => s.history.reduce((a, r) => a + r.bytes_down, 0);
    // Steps move the same activations either way; parameters go up and come down once per client
    // and round, at 2 bytes a value instead of 4: the same saving each way, half the parameter bytes.
    const saved = up(full.summary) - up(half.summary);
    expect(saved).toBe(down(full.summary) - down(half.summary));
    const paramBytes = (rounds: number, clients: number) => (2 * saved) / (rounds * clients); // float32 bytes of one parameter set
    expect(paramBytes(3, 2)).toBeGreaterThan(0);
    expect(Number.isInteger(paramBytes(3, 2) / 4)).toBe(true);
    // Both clients rebuilt the same global parts from the deltas: the same model gives the same held-out loss.
    expect(half.results[0].eval!.loss).toBe(half.results[1].eval!.loss);
    const before = await initialEvalLoss(half.cfg, half.data);
    expect(half.results[0].eval!.loss).toBeLessThan(before);
    expect(Math.abs(half.results[0].eval!.loss - full.results[0].eval!.loss)).toBeLessThan(0.05);
  });

  test('transport.activation_dtype fp16 / bf16: activations and their gradients travel at half the bytes; training follows the float32 run closely', async () => {
    const run = async (dtype: string) => {
      const cfg = config(
        base +
          plain +
          `transport: {activation_dtype: ${dtype}}\nfederation: {mode: sequential, clients: 1, rounds: 1, local_steps: 6}\n`,
      );
      const dtypes = new Set<string>();
      const r = await federate(cfg, {
        audit: (_id, m) => {
          if (m.kind === 'activations' || m.kind === 'tailGrad')
            dtypes.add((m.activations ?? m.tailGrad)!.tensor!.dtype);
        },
      });
      return {
        losses: r.results[0].losses,
        dtypes: [...dtypes],
        up: r.summary.history[0].bytes_up,
        down: r.summary.history[0].bytes_down,
      };
    };
    const full = await run('fp32');
    for (const [dtype, wire] of [
      ['fp16', 'float16'],
      ['bf16', 'bfloat16'],
    ]) {
      const half = await run(dtype);
      expect(half.dtypes).toEqual([wire]);
      // Each of the 6 steps moves h_A and dL/dh_B up, h_B and dL/dh_A down, [4, 48, hidden] each:
      // 2 bytes a value saved on each of them (parameters travel as float32 either way).
      const saved = 6 * 2 * 4 * 48 * PRESETS.tiny.hidden_size * 2;
      expect(full.up - half.up).toBe(saved);
      expect(full.down - half.down).toBe(saved);
      half.losses.forEach((l, i) => expect(Math.abs(l - full.losses[i])).toBeLessThan(0.05 * full.losses[i]));
    }
  });
});
