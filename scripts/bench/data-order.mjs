// Why federated training on non-IID silos lags centralized at a small budget, measured without any
// federation: the centralized model (one process, one optimizer) trained on the quickstart data,
// once on the shuffled union and once with batches taken from the silos in blocks of K consecutive
// steps per silo (round-robin) -- the order in which a federated model's parts see the data when
// each client trains K local steps per turn; `p1`: turns of one step in proportion to silo sizes,
// chosen by the relay strategy's own turn order; `p1-splitclip`: the same, but the trunk's and the
// client parts' gradients clipped each by its own norm (what a split without joint clipping does).
// Held-out accuracy every 26 steps.
// Usage: npm run bench -- data-order [orders=0,13,4,1,p1] [seeds=1] [config=configs/quickstart.yaml]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dist, root, writeResult } from './common.mjs';

const orders = (process.argv[2] ?? '0,13,4,1,p1').split(',');
const seeds = Number(process.argv[3] ?? 1);
const cfgPath = process.argv[4] ?? join(root, 'configs', 'quickstart.yaml');
const { loadConfigFile } = await import(dist('config/load.js'));
const { resolveModel, resolveData, peftOf } = await import(dist('config/experiment.js'));
const { BatchStream, evalBatches } = await import(dist('data/batches.js'));
const { PartExecutor } = await import(dist('training/part-executor.js'));
const { clipGlobalNorm, createOptimizer, learningRate } = await import(dist('training/optimizer.js'));
const { evaluateBatches } = await import(dist('training/evaluate.js'));
const { Relay } = await import(dist('federation/strategies/relay.js'));
const { partParamNames } = await import(dist('model/partition.js'));

async function train(cfg, order) {
  const proportional = order.startsWith('p1');
  const K = proportional ? 1 : Number(order);
  const { config, store, tokenizer } = resolveModel(cfg);
  const data = resolveData(cfg);
  const model = new PartExecutor('full', config, cfg.split, peftOf(cfg), store, {
    device: cfg.runtime.device,
    threads: cfg.runtime.threads,
  });
  const opt = createOptimizer(cfg.optimizer);
  const params = new Map(model.trainable.map((n) => [n, store.get(n).data]));
  const { batch_size: B, seq_len: S } = cfg.data;
  const steps = cfg.federation.rounds * cfg.federation.local_steps * cfg.federation.clients;
  const streams =
    K === 0
      ? [new BatchStream(data.silos.flat(), tokenizer, B, S, cfg.seed)]
      : data.silos.map((s, i) => new BatchStream(s, tokenizer, B, S, cfg.seed + i));
  const relay = new Relay();
  const turns = proportional
    ? relay
        .turnOrder(
          data.silos.map((s, i) => ({ id: String(i), weight: s.length })),
          steps,
        )
        .map(Number)
    : null;
  const evalSet = evalBatches(data.test, tokenizer, B, S, cfg.eval.max_batches);
  const trunkNames = new Set(partParamNames('trunk', config, cfg.split, store));
  const curve = [];
  for (let step = 0; step < steps; step++) {
    const b = (
      K === 0 ? streams[0] : turns ? streams[turns[step]] : streams[Math.floor(step / K) % streams.length]
    ).next();
    const r = await model.step(b.tokens, b.labels);
    if (order === 'p1-splitclip') {
      const trunk = [...r.grads].filter(([n]) => trunkNames.has(n));
      clipGlobalNorm(new Map(trunk), cfg.optimizer.grad_clip);
      clipGlobalNorm(new Map([...r.grads].filter(([n]) => !trunkNames.has(n))), cfg.optimizer.grad_clip);
    } else clipGlobalNorm(r.grads, cfg.optimizer.grad_clip);
    opt.apply(params, r.grads, learningRate(cfg.optimizer.lr, cfg.schedule, step, steps));
    if ((step + 1) % 26 === 0 || step + 1 === steps) {
      const m = await evaluateBatches(evalSet, (x) => model.evaluate(x.tokens, x.labels), true);
      curve.push({ step: step + 1, accuracy: m.accuracy, loss: m.loss });
    }
  }
  await model.release();
  return curve;
}

const label = (o) =>
  o === '0'
    ? 'shuffled union'
    : o === 'p1'
      ? 'turns of 1, proportional to silo size'
      : o === 'p1-splitclip'
        ? 'turns of 1, proportional, trunk and client parts clipped separately'
        : `round-robin blocks of ${o}`;
// Orders of earlier invocations are kept; an order run again is replaced.
const previousFile = join(root, 'bench-results', 'data-order.json');
const previous = existsSync(previousFile) ? JSON.parse(readFileSync(previousFile, 'utf8')) : null;
const command = `npm run bench -- data-order ${process.argv.slice(2).join(' ')}`.trim();
const result = {
  command,
  commands: [...new Set([...(previous?.commands ?? (previous?.command ? [previous.command] : [])), command])],
  config: cfgPath.replace(`${root}/`, ''),
  runs: { ...(previous?.runs ?? {}) },
};
for (const order of orders) delete result.runs[label(order)];
for (const order of orders) {
  for (let s = 0; s < seeds; s++) {
    const cfg = loadConfigFile(cfgPath);
    cfg.seed += s;
    const curve = await train(cfg, order);
    (result.runs[label(order)] ??= []).push(curve);
    console.error(
      `${label(order)} seed ${cfg.seed}: ${curve.map((p) => `${p.step}:${p.accuracy.toFixed(3)}`).join(' ')}`,
    );
  }
}
writeResult('data-order', result);
