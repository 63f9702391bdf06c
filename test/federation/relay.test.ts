import { SplitServer } from '../../src/server/split-server.js';
import { trainableData } from '../../src/model/params.js';
import { startTransport } from '../../src/server/transport.js';
import { runClient } from '../../src/client/split-client.js';
import { peftOf, resolveData, resolveModel } from '../../src/config/experiment.js';
import { BatchStream } from '../../src/data/batches.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { clipGlobalNorm, createOptimizer, learningRate } from '../../src/training/optimizer.js';
import { config, CLIENT_IDS } from '../helpers/federation.js';

/**
 * Relay is vanilla split learning: one model and one optimizer travelling through the federation.
 * With clipping active and AdamW, the per-step losses of a 3-client relay run must equal those of
 * centralized training on the same batches in the same order.
 */
test('relay, 3 clients: the same losses as centralized training on the interleaved batches', async () => {
  const cfg = config(`
seed: 4
model: {preset: tiny, max_seq_len: 64}
optimizer: {lr: 0.003, grad_clip: 0.05}
schedule: {warmup_steps: 2}
data: {task: classify, batch_size: 4, seq_len: 48, max_examples: 60}
eval: {max_batches: 1}
federation: {mode: sequential, clients: 3, rounds: 3, local_steps: 2, strategy: {name: relay}}
security: {tls: false, payload_encryption: false}
`);
  const data = resolveData(cfg);
  const steps: { client: string; loss: number }[] = [];
  const server = new SplitServer({
    cfg,
    kit: null,
    onMetric: (r) => {
      if (r.type === 'step') steps.push({ client: r.client as string, loss: r.loss as number });
    },
  });
  await server.init();
  const transport = await startTransport({ kit: null, port: 0, onSession: server.onSession });
  try {
    const ids = CLIENT_IDS.slice(0, 3);
    await Promise.all(
      ids.map((id, i) =>
        runClient({
          target: `127.0.0.1:${transport.port}`,
          kit: null,
          train: data.silos[i],
          test: data.test,
          insecureName: id,
          reconnectAttempts: 0,
        }),
      ),
    );
    await server.done;
  } finally {
    await transport.close();
    await server.close();
  }
  expect(steps).toHaveLength(18);
  // Replay centrally: each step takes the next batch of the client whose turn it was.
  const { config: model, store, tokenizer } = resolveModel(cfg);
  const full = new PartExecutor('full', model, cfg.split, peftOf(cfg), store, { threads: 1 });
  const optimizer = createOptimizer(cfg.optimizer);
  const params = new Map(full.trainable.map((n) => [n, trainableData(store.get(n)!, n)]));
  const streams = new Map(
    CLIENT_IDS.slice(0, 3).map((id, i) => [
      `insecure-${id}`,
      new BatchStream(data.silos[i], tokenizer, cfg.data.batch_size, cfg.data.seq_len, cfg.seed),
    ]),
  );
  try {
    for (let k = 0; k < steps.length; k++) {
      const b = streams.get(steps[k].client)!.next();
      const r = await full.step(b.tokens, b.labels);
      clipGlobalNorm(r.grads, cfg.optimizer.grad_clip);
      optimizer.apply(params, r.grads, learningRate(cfg.optimizer.lr, cfg.schedule, k, steps.length));
      expect(Math.abs(steps[k].loss - r.loss) / r.loss).toBeLessThan(1e-4);
    }
  } finally {
    await full.release();
  }
  // Turns (of local_steps: 2) go to clients in proportion to their data, as the union is sampled.
  const total = data.silos.reduce((a, s) => a + s.length, 0);
  CLIENT_IDS.slice(0, 3).forEach((id, i) => {
    const turns = steps.filter((s) => s.client === `insecure-${id}`).length / 2;
    expect(Math.abs(turns - (9 * data.silos[i].length) / total)).toBeLessThanOrEqual(1);
  });
});
