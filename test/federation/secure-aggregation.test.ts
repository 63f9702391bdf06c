import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveData } from '../../src/config/experiment.js';
import type { ExperimentConfig } from '../../src/config/schema.js';
import { SplitClient, type ClientOptions } from '../../src/client/split-client.js';
import { SplitServer } from '../../src/server/split-server.js';
import { startTransport } from '../../src/server/transport.js';
import { keygen } from '../../src/security/pki.js';
import { loadCheckpoint } from '../../src/training/checkpoint.js';
import { serverViewHead } from '../../src/privacy/attack.js';
import { CLIENT_IDS, config } from '../helpers/federation.js';

// Secure aggregation in a real federation (server + clients over gRPC on 127.0.0.1): it must give
// what FedAvg gives (up to the fixed-point encoding), survive a client that drops mid-protocol with
// the exact aggregate of the others, and with hide_aggregate leave the server without the global
// parts while every client still gets them.
// One round where results are compared: after it, AdamW turns the encoding's 1e-6 differences into
// differences of the size of a step (it normalises tiny gradients), which says nothing about the aggregate.
const base = (extra: string, rounds = 1) =>
  config(
    `
seed: 5
model: {preset: tiny, max_seq_len: 32}
split: {head_blocks: 1, tail_blocks: 1}
data: {task: classify, batch_size: 4, seq_len: 32, max_examples: 24}
federation: {mode: hierarchical, sub_servers: 3, strategy: {name: fedavg}, clients: 3, rounds: ROUNDS, local_steps: 2, min_clients: 2, client_timeout_ms: 20000}
eval: {max_batches: 2}
${extra}`.replace('ROUNDS', String(rounds)),
  );

async function federation(
  cfg: ExperimentConfig,
  o: { kitRoot?: string; checkpointDir?: string; hooks?: (id: string) => Partial<ClientOptions> } = {},
) {
  const data = resolveData(cfg);
  const kit = o.kitRoot ? join(o.kitRoot, 'server') : null;
  const server = new SplitServer({ cfg, kit, checkpointDir: o.checkpointDir ?? null });
  await server.init();
  const transport = await startTransport({
    kit,
    port: 0,
    onSession: server.onSession,
    maxMessageBytes: server.limits.maxMessageBytes,
  });
  try {
    const ids = CLIENT_IDS.slice(0, cfg.federation.clients);
    const results = await Promise.allSettled(
      ids.map((id, i) =>
        new SplitClient({
          target: `127.0.0.1:${transport.port}`,
          kit: o.kitRoot ? join(o.kitRoot, 'clients', id) : null,
          serverName: 'localhost',
          train: data.silos[i],
          test: data.test,
          reconnectAttempts: 0,
          insecureName: id,
          ...o.hooks?.(id),
        }).run(),
      ),
    );
    return { results, summary: await server.done };
  } finally {
    await transport.close();
    await server.close();
  }
}

const evalLoss = (r: Awaited<ReturnType<typeof federation>>) => r.summary.eval_summary.loss;

test("secure aggregation gives FedAvg's result, also when a client drops after sending its shares", async () => {
  const plain = await federation(base(''));
  const secure = await federation(base('privacy: {secure_aggregation: {enabled: true}}'));
  expect(secure.summary.history.map((h) => h.clients)).toEqual(plain.summary.history.map((h) => h.clients));
  expect(secure.summary.history[0].train_loss).toBe(plain.summary.history[0].train_loss); // same start, same steps
  expect(Math.abs(evalLoss(secure) - evalLoss(plain)) / evalLoss(plain)).toBeLessThan(1e-5);
  // The round record says where the exchanges' time went; their sum is secure_aggregation_s.
  const end = secure.summary.history[0].round_end!;
  expect(Object.keys(end.secure_aggregation!).sort()).toEqual([
    'keys_s',
    'masked_s',
    'reveal_s',
    'shares_s',
    'unmask_s',
  ]);
  expect(end.secure_aggregation_s).toBeCloseTo(
    Object.values(end.secure_aggregation!).reduce((a, b) => a + b, 0),
    9,
  );
  expect(end.secure_aggregation_s!).toBeGreaterThan(0);
  expect(plain.summary.history[0].round_end!.secure_aggregation).toBeUndefined();

  // carol fails after her shares are out (so alice's and bob's inputs carry masks shared with her);
  // the same failure without secure aggregation: after her last step, before her upload.
  const fail =
    (id: string, after: 'shares' | 'step') =>
    (c: string): Partial<ClientOptions> =>
      c !== id
        ? {}
        : after === 'shares'
          ? {
              onSecureAggregation: (round, phase) => {
                if (round === 1 && phase === 'shares') throw new Error('carol goes away');
              },
            }
          : {
              onStep: (round, step) => {
                if (round === 1 && step === 2) throw new Error('carol goes away');
              },
            };
  const securelyDropped = await federation(base('privacy: {secure_aggregation: {enabled: true}}'), {
    hooks: fail('carol', 'shares'),
  });
  const plainlyDropped = await federation(base(''), { hooks: fail('carol', 'step') });
  expect(securelyDropped.summary.history[0].clients).toEqual(['insecure-alice', 'insecure-bob']);
  expect(securelyDropped.summary.history[0].dropped).toEqual(['insecure-carol']);
  expect(securelyDropped.results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
  expect(plainlyDropped.summary.history[0].clients).toEqual(['insecure-alice', 'insecure-bob']);
  expect(Math.abs(evalLoss(securelyDropped) - evalLoss(plainlyDropped)) / evalLoss(plainlyDropped)).toBeLessThan(1e-5);
}, 180_000);

test('hide_aggregate: the server keeps no global parts in the clear, the clients open the same aggregate', async () => {
  const root = mkdtempSync(join(tmpdir(), 'flglm-hidden-'));
  keygen({
    out: join(root, 'pki'),
    clients: CLIENT_IDS.slice(0, 3),
    serverName: 'localhost',
    serverIps: ['127.0.0.1'],
    days: 1,
    keyBits: 2048,
  });
  expect(existsSync(join(root, 'pki', 'clients', 'alice', 'federation.secret'))).toBe(true);
  expect(existsSync(join(root, 'pki', 'server', 'federation.secret'))).toBe(false);
  const ckpt = join(root, 'ckpt');
  // Two rounds: the second starts from parts only the clients could open.
  const hidden = await federation(base('privacy: {secure_aggregation: {enabled: true}, hide_aggregate: true}', 2), {
    kitRoot: join(root, 'pki'),
    checkpointDir: ckpt,
  });
  const secure = await federation(base('privacy: {secure_aggregation: {enabled: true}}', 2), {
    kitRoot: join(root, 'pki'),
  });
  expect(hidden.summary.history.map((h) => h.train_loss)).toEqual(secure.summary.history.map((h) => h.train_loss));
  expect(evalLoss(hidden)).toBe(evalLoss(secure));
  // Every client evaluated the same opened parts.
  const losses = hidden.summary.eval.map((e) => e.eval!.loss);
  expect(new Set(losses.map((l) => l.toFixed(6))).size).toBe(1);
  // The server's checkpoint holds the masked sum only, so the inversion attack falls back to the initial head.
  const saved = loadCheckpoint(join(ckpt, 'latest'));
  expect([...(saved.extra?.keys() ?? [])]).toEqual(['secagg/sum']);
  expect(serverViewHead(base(''), join(ckpt, 'latest')).source).toMatch(/^the initial weights/);
}, 180_000);
