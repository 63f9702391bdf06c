// Why federated training on non-IID silos lags centralized at a small budget, measured without any
// federation: the centralized model (one process, one optimizer) trained on the quickstart data,
// once on the shuffled union and once with batches taken from the silos in blocks of K consecutive
// steps per silo (round-robin) -- the order in which a federated model's parts see the data when
// each client trains K local steps per turn. Held-out accuracy every 26 steps.
// Usage: npm run bench -- data-order [blocks=0,1,4,13] [seeds=1] [config=configs/quickstart.yaml]
import { join } from 'node:path';
import { dist, root, writeResult } from './common.mjs';

const blocks = (process.argv[2] ?? '0,1,4,13').split(',').map(Number);
const seeds = Number(process.argv[3] ?? 1);
const cfgPath = process.argv[4] ?? join(root, 'configs', 'quickstart.yaml');
const { loadConfigFile } = await import(dist('config/load.js'));
const { resolveModel, resolveData, peftOf } = await import(dist('config/experiment.js'));
const { BatchStream, evalBatches } = await import(dist('data/batches.js'));
const { PartExecutor } = await import(dist('runtime/part-executor.js'));
const { clipGlobalNorm, createOptimizer, learningRate } = await import(dist('runtime/optimizer.js'));
const { evaluateBatches } = await import(dist('runtime/evaluate.js'));

async function train(cfg, K) {
  const { config, store, tokenizer } = resolveModel(cfg);
  const data = resolveData(cfg);
  const model = new PartExecutor('full', config, cfg.split, peftOf(cfg), store, { device: cfg.runtime.device, threads: cfg.runtime.threads });
  const opt = createOptimizer(cfg.optimizer);
  const params = new Map(model.trainable.map((n) => [n, store.get(n).data]));
  const { batch_size: B, seq_len: S } = cfg.data;
  const steps = cfg.federation.rounds * cfg.federation.local_steps * cfg.federation.clients;
  const streams = K === 0 ? [new BatchStream(data.silos.flat(), tokenizer, B, S, cfg.seed)] : data.silos.map((s, i) => new BatchStream(s, tokenizer, B, S, cfg.seed + i));
  const evalSet = evalBatches(data.test, tokenizer, B, S, cfg.eval.max_batches);
  const curve = [];
  for (let step = 0; step < steps; step++) {
    const b = (K === 0 ? streams[0] : streams[Math.floor(step / K) % streams.length]).next();
    const r = await model.step(b.tokens, b.labels);
    clipGlobalNorm(r.grads, cfg.optimizer.grad_clip);
    opt.apply(params, r.grads, learningRate(cfg.optimizer.lr, cfg.schedule, step, steps));
    if ((step + 1) % 26 === 0 || step + 1 === steps) {
      const m = await evaluateBatches(evalSet, (x) => model.evaluate(x.tokens, x.labels), true);
      curve.push({ step: step + 1, accuracy: m.accuracy, loss: m.loss });
    }
  }
  await model.release();
  return curve;
}

const result = { command: `npm run bench -- data-order ${process.argv.slice(2).join(' ')}`.trim(), config: cfgPath.replace(`${root}/`, ''), runs: {} };
for (const K of blocks) {
  for (let s = 0; s < seeds; s++) {
    const cfg = loadConfigFile(cfgPath);
    cfg.seed += s;
    const curve = await train(cfg, K);
    (result.runs[K === 0 ? 'shuffled' : `blocks of ${K}`] ??= []).push(curve);
    console.error(`${K === 0 ? 'shuffled union' : `blocks of ${K}`} seed ${cfg.seed}: ${curve.map((p) => `${p.step}:${p.accuracy.toFixed(3)}`).join(' ')}`);
  }
}
writeResult('data-order', result);
