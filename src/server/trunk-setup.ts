import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { peftOf, resolveModel } from '../config/experiment.js';
import type { ExperimentConfig } from '../config/schema.js';
import type { ClientPartSpec } from '../federation/strategies/strategy.js';
import type { ModelConfig } from '../model/config.js';
import { partParamNames } from '../model/partition.js';
import { defaultThreads } from '../runtime/threads.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/logger.js';
import type { RoundAggregator } from './aggregation.js';
import { clientLimits, type ClientLimits } from './client-limits.js';
import { clientPartSpec, serverWeights } from './client-update.js';
import type { ModePlugin } from './modes/mode.js';
import { loadServerCheckpoint, trunkLeftInBase, type ServerProgress } from './server-checkpoint.js';
import { TrunkPool } from './trunk-pool.js';

/** What the server runs and checks clients against, built before any client joins. */
export interface ServerSetup {
  model: ModelConfig;
  /** What each client must send at round end, and what it may make the server hold. */
  partSpec: ClientPartSpec;
  limits: ClientLimits;
  pool: TrunkPool;
  /** Frozen trunk weights that round checkpoints leave in the base model folder (null: they store all). */
  trunkInBase: string[] | null;
  /** Where the federation stood at the checkpoint it resumes from (null: a fresh start). */
  progress: ServerProgress | null;
}

/** The model, the limits clients are held to, and the trunk replicas (from the last checkpoint when resuming). */
export function setupServer(o: {
  cfg: ExperimentConfig;
  mode: ModePlugin;
  aggregator: RoundAggregator;
  checkpointDir?: string | null;
  resume?: boolean;
  log: Log;
}): ServerSetup {
  const { cfg } = o;
  const { config, store } = resolveModel(cfg, serverWeights(cfg));
  const partSpec = o.aggregator.uploadSpec(clientPartSpec(cfg, config), store);
  const replicas = o.mode.replicaCount(cfg.federation);
  const threads = cfg.runtime.threads ?? Math.max(1, Math.floor(defaultThreads() / replicas));
  const trunkNames = new Set(partParamNames('trunk', config, cfg.split, store));
  let loaded: ReturnType<typeof loadServerCheckpoint> | null = null;
  const ckpt = o.checkpointDir ? join(o.checkpointDir, 'latest') : null;
  if (o.resume) {
    if (!ckpt || !existsSync(join(ckpt, 'checkpoint.json')))
      throw new UserError(`--resume: no complete server checkpoint in ${ckpt ?? '(no --checkpoints folder given)'}`);
    loaded = loadServerCheckpoint(ckpt);
    for (const [n, t] of loaded.trunk) store.set(n, t);
    o.log(`resumed from ${ckpt}: round ${loaded.progress.round} of ${cfg.federation.rounds} complete`);
  }
  const pool = new TrunkPool(cfg, {
    model: config,
    split: cfg.split,
    peft: peftOf(cfg),
    optimizer: cfg.optimizer,
    schedule: cfg.schedule,
    runtime: { device: cfg.runtime.device, threads, spinning: false, arena: cfg.runtime.memory_arena },
    params: [...store].filter(([n]) => trunkNames.has(n)),
    // Several trunk replicas are averaged like client parts, so the strategy's trunk hook (FedProx's
    // pull towards the round's trunk) runs on each of them.
    strategy: replicas > 1 ? cfg.federation.strategy : null,
  });
  if (loaded) pool.trunkSteps = loaded.progress.trunkSteps;
  pool.startLocal(replicas, loaded?.optimizer);
  return {
    model: config,
    partSpec,
    limits: clientLimits(cfg, config, partSpec),
    pool,
    trunkInBase: trunkLeftInBase(cfg, [...trunkNames]),
    progress: loaded?.progress ?? null,
  };
}
