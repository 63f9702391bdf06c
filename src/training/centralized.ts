import type { ExperimentConfig } from '../config/schema.js';
import { peftOf, resolveData, resolveModel, type ExperimentData } from '../config/experiment.js';
import { BatchStream, evalBatches } from '../data/batches.js';
import { isPromptExample } from '../data/examples.js';
import { saveCheckpoint } from './checkpoint.js';
import { PartExecutor } from './part-executor.js';
import { trainableData } from '../model/params.js';
import { clipAndApply, createOptimizer, globalNorm, GradientAccumulator, learningRate } from './optimizer.js';
import { evaluateBatches, type EvalMetrics } from './evaluate.js';
import { Progress } from '../report/progress.js';
import { evaluateGeneration, generationEvalOptions, type GenerationMetrics } from './generation-eval.js';

export interface TrainSummary {
  mode: string;
  steps: number;
  tokens: number;
  wall_s: number;
  tokens_per_s: number;
  train_loss_final: number;
  eval: EvalMetrics;
  losses: number[];
  /** Held-out evaluations during training, at the federated run's evaluation cadence in tokens. */
  curve: { step: number; tokens: number; loss: number; accuracy: number }[];
  /** Task generate: greedy generations from the held-out prompts, scored (ROUGE-L F1, exact match). */
  generation?: GenerationMetrics;
}

export interface CentralizedOptions {
  steps?: number;
  quiet?: boolean;
  checkpointDir?: string;
  data?: ExperimentData;
  /** Evaluate every this many steps (default: the tokens between two federated evaluations). */
  evalEverySteps?: number;
  /** Called after every optimizer step (a launcher's progress bar). */
  onStep?: (record: { type: 'step'; step: number; loss: number; tokens: number; time: number }) => void;
}

/** Same budget as the federated run: every client's local steps of every round, on the union of silos. */
export function federatedStepBudget(cfg: ExperimentConfig): number {
  return cfg.federation.rounds * cfg.federation.local_steps * cfg.federation.clients;
}

/** The centralized baseline: the unsplit model trained on the union of all silos. */
export async function trainCentralized(cfg: ExperimentConfig, opts: CentralizedOptions = {}): Promise<TrainSummary> {
  const { config, store, tokenizer } = resolveModel(cfg);
  const peft = peftOf(cfg);
  const data = opts.data ?? resolveData(cfg);
  const union = data.silos.flat();
  const steps = opts.steps ?? federatedStepBudget(cfg);
  const runtime = { device: cfg.runtime.device, threads: cfg.runtime.threads, arena: cfg.runtime.memory_arena };
  const model = new PartExecutor('full', config, cfg.split, peft, store, runtime);
  const optimizer = createOptimizer(cfg.optimizer);
  const accumulator = new GradientAccumulator();
  const stream = new BatchStream(union, tokenizer, cfg.data.batch_size, cfg.data.seq_len, cfg.seed);
  const params = new Map(model.trainable.map((n) => [n, trainableData(store.get(n)!, n)]));
  const progress = new Progress('train', steps, process.stderr, opts.quiet);

  const evalSet = evalBatches(data.test, tokenizer, cfg.data.batch_size, cfg.data.seq_len, cfg.eval.max_batches);
  const evaluate = () =>
    evaluateBatches(evalSet, (b) => model.evaluate(b.tokens, b.labels), data.test.some(isPromptExample));
  const evalEvery = opts.evalEverySteps ?? cfg.eval.every_rounds * cfg.federation.local_steps * cfg.federation.clients;
  const curve: TrainSummary['curve'] = [];
  let evalSeconds = 0;
  const losses: number[] = [];
  let tokens = 0;
  const start = performance.now();
  for (let step = 0; step < steps; step++) {
    let lossSum = 0;
    for (let micro = 0; micro < cfg.optimizer.grad_accum; micro++) {
      const batch = stream.next();
      const r = await model.step(batch.tokens, batch.labels);
      accumulator.add(r.grads);
      lossSum += r.loss;
      tokens += batch.tokens.data.length;
    }
    const grads = accumulator.take();
    clipAndApply(
      optimizer,
      params,
      grads,
      globalNorm(grads.values()),
      cfg.optimizer.grad_clip,
      learningRate(cfg.optimizer.lr, cfg.schedule, step, steps),
    );
    losses.push(lossSum / cfg.optimizer.grad_accum);
    const elapsed = (performance.now() - start) / 1000;
    progress.update(step + 1, {
      loss: losses[losses.length - 1],
      'tok/s': Math.round(tokens / (elapsed - evalSeconds)),
    });
    opts.onStep?.({ type: 'step', step: step + 1, loss: losses[losses.length - 1], tokens, time: Date.now() });
    if ((step + 1) % evalEvery === 0 && step + 1 < steps) {
      const t0 = performance.now();
      const m = await evaluate();
      curve.push({ step: step + 1, tokens, loss: m.loss, accuracy: m.accuracy });
      evalSeconds += (performance.now() - t0) / 1000;
    }
  }
  progress.done();
  const wall = (performance.now() - start) / 1000 - evalSeconds;

  const metrics = await evaluate();
  curve.push({ step: steps, tokens, loss: metrics.loss, accuracy: metrics.accuracy });
  const generation =
    cfg.data.task === 'generate'
      ? await evaluateGeneration({ config, peft, store }, tokenizer, data.test, generationEvalOptions(cfg), runtime)
      : undefined;
  if (opts.checkpointDir)
    saveCheckpoint(
      opts.checkpointDir,
      store,
      { model: config, peft, step: steps, data: stream.state(), base_model: cfg.model.hf_path ?? undefined },
      optimizer.state(),
      undefined,
      cfg.model.hf_path,
    );
  await model.release();
  const tail = losses.slice(-Math.min(10, losses.length));
  return {
    mode: 'centralized',
    steps,
    tokens,
    wall_s: wall,
    tokens_per_s: tokens / wall,
    train_loss_final: tail.reduce((a, b) => a + b, 0) / tail.length,
    eval: metrics,
    losses,
    curve,
    ...(generation ? { generation } : {}),
  };
}
