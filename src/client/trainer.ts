import type { ExperimentConfig } from '../config/schema.js';
import { peftOf, resolveModel } from '../config/experiment.js';
import { BatchStream } from '../data/batches.js';
import type { Example } from '../data/examples.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { ModelConfig } from '../model/config.js';
import { trainableData, type ParamStore } from '../model/params.js';
import { PartExecutor } from '../training/part-executor.js';
import { partOwns } from '../model/partition.js';
import { createOptimizer, type Optimizer } from '../training/optimizer.js';
import type { ClientHalf } from '../federation/strategies/plugin.js';
import { createClientHalf, strategyTraits } from '../federation/strategies/lookup.js';
import { modeTraits } from '../server/modes/lookup.js';

export interface Trainer {
  cfg: ExperimentConfig;
  config: ModelConfig;
  store: ParamStore;
  tokenizer: Tokenizer;
  head: PartExecutor;
  tail: PartExecutor;
  params: Map<string, Float32Array>;
  optimizer: Optimizer;
  stream: BatchStream;
  /** The client parts and their optimizer state travel from client to client (a hand-off strategy). */
  handoff: boolean;
  /** The optimizer state goes up with the parts and comes back with the global ones (hand-off, or client_optimizer: average). */
  sharesOptimizer: boolean;
  /** The strategy's client half (its hooks and state), if it has one. */
  half: ClientHalf | null;
  /** The plan's mode averages client-part gradients every step (lockstep): this client steps with the mean. */
  averagesPartGrads: boolean;
}

/** The client's half of the model and its training state, built from the server's plan. */
export function createTrainer(cfg: ExperimentConfig, train: Example[]): Trainer {
  // Only the head's and the tail's weights are read: the trunk is the server's.
  const { config, store, tokenizer } = resolveModel(cfg, (model) => {
    const [head, tail] = [partOwns('head', model, cfg.split), partOwns('tail', model, cfg.split)];
    return (name) => head(name) || tail(name);
  });
  const peft = peftOf(cfg);
  const runtime = {
    device: cfg.runtime.device,
    threads: cfg.runtime.threads,
    spinning: false,
    arena: cfg.runtime.memory_arena,
  };
  const head = new PartExecutor('head', config, cfg.split, peft, store, runtime);
  const tail = new PartExecutor('tail', config, cfg.split, peft, store, runtime);
  const trainable = [...new Set([...head.trainable, ...tail.trainable])];
  const { strategy } = cfg.federation;
  const handoff = strategyTraits(strategy.name).handoff;
  return {
    cfg,
    config,
    store,
    tokenizer,
    head,
    tail,
    params: new Map(trainable.map((n) => [n, trainableData(store.get(n)!, n)])),
    optimizer: createOptimizer(cfg.optimizer),
    stream: new BatchStream(train, tokenizer, cfg.data.batch_size, cfg.data.seq_len, cfg.seed),
    handoff,
    sharesOptimizer: handoff || strategy.client_optimizer === 'average',
    half: createClientHalf(strategy),
    averagesPartGrads: modeTraits(cfg.federation.mode).averagesPartGrads === true,
  };
}
