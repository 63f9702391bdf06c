import type { Params } from '../federation/strategies/strategy.js';
import { loadCheckpoint, referencesBase, saveCheckpoint, type FrozenQuant } from '../training/checkpoint.js';
import type { ExperimentConfig } from '../config/schema.js';
import { peftOf } from '../config/experiment.js';
import type { ModelConfig } from '../model/config.js';
import { isTrainable, type PeftConfig } from '../model/params.js';
import type { NamedTensor } from '../model/safetensors.js';
import type { OptimizerState } from '../training/optimizer.js';
import type { RoundRecord } from './records.js';
import { HIDDEN_SUM_TENSOR, type HiddenAggregate } from './secure-collect.js';

/** Where a federation stands after a round: what `--resume` needs besides the trunk. */
export interface ServerProgress {
  round: number;
  trunkSteps: number[];
  history: RoundRecord[];
  tokensSeen: number;
  globalClientParams: Params | null;
  strategyState: Params;
  /** privacy.hide_aggregate: the masked aggregate, kept for clients that rejoin (the server cannot open it). */
  hidden?: HiddenAggregate | null;
}

/** Checkpoint tensors of the strategy's server state carry this prefix; the rest are global client parts. */
const STRATEGY_PREFIX = 'strategy/';

const named = (d: Float32Array): NamedTensor => ({ shape: [d.length], data: d });

/** The server's round checkpoint: trunk and its optimizer, global client parts, strategy state, progress (atomic). */
/**
 * With LoRA or prefix tuning on a base model folder, the frozen trunk weights never change: round
 * checkpoints leave them in that folder (see CheckpointMeta.frozen). Their names, or null.
 */
export function trunkLeftInBase(cfg: ExperimentConfig, trunkNames: string[]): string[] | null {
  const peft = peftOf(cfg);
  return referencesBase(peft, cfg.model.hf_path) ? trunkNames.filter((n) => !isTrainable(n, peft.method)) : null;
}

/** `meta.frozen`: trunk weights that `trunk.params` leaves out, read back from `meta.baseModel` on load. */
export function saveServerCheckpoint(
  dir: string,
  trunk: { optimizer: OptimizerState; params: [string, NamedTensor][] },
  meta: {
    model: ModelConfig;
    peft: PeftConfig;
    mode: string;
    strategy: string;
    baseModel?: string;
    frozen?: string[];
    quantizedBase?: FrozenQuant;
  },
  p: ServerProgress,
): void {
  const extra = new Map<string, NamedTensor>([...(p.globalClientParams ?? [])].map(([n, d]) => [n, named(d)]));
  for (const [n, d] of p.strategyState) extra.set(`${STRATEGY_PREFIX}${n}`, named(d));
  // The ring words stored bit for bit in a float32 tensor (safetensors copies the bytes as they are).
  if (p.hidden)
    extra.set(
      HIDDEN_SUM_TENSOR,
      named(new Float32Array(p.hidden.sum.buffer, p.hidden.sum.byteOffset, p.hidden.sum.length)),
    );
  saveCheckpoint(
    dir,
    new Map(trunk.params),
    {
      model: meta.model,
      peft: meta.peft,
      step: p.trunkSteps[0],
      round: p.round,
      extra: {
        round: p.round,
        trunkSteps: p.trunkSteps,
        history: p.history,
        mode: meta.mode,
        strategy: meta.strategy,
        tokensSeen: p.tokensSeen,
        ...(p.hidden ? { hidden: { round: p.hidden.round, total: p.hidden.total } } : {}),
      },
      ...(meta.baseModel ? { base_model: meta.baseModel } : {}),
      ...(meta.quantizedBase ? { quantized_base: meta.quantizedBase } : {}),
    },
    trunk.optimizer,
    extra,
    undefined,
    meta.frozen,
  );
}

export function loadServerCheckpoint(dir: string): {
  trunk: Map<string, NamedTensor>;
  optimizer?: OptimizerState;
  progress: ServerProgress;
} {
  const loaded = loadCheckpoint(dir);
  const extra = (loaded.meta.extra ?? {}) as {
    round: number;
    trunkSteps: number[];
    history: RoundRecord[];
    tokensSeen?: number;
    hidden?: { round: number; total: number };
  };
  const saved = [...(loaded.extra ?? [])]
    .filter(([n]) => n !== HIDDEN_SUM_TENSOR)
    .map(([n, t]) => [n, t.data] as const);
  const sum = loaded.extra?.get(HIDDEN_SUM_TENSOR)?.data;
  const hidden =
    extra.hidden && sum ? { ...extra.hidden, sum: new Uint32Array(sum.buffer, sum.byteOffset, sum.length) } : null;
  return {
    trunk: loaded.store as Map<string, NamedTensor>,
    optimizer: loaded.optimizer,
    progress: {
      round: extra.round,
      trunkSteps: extra.trunkSteps,
      history: extra.history,
      tokensSeen: extra.tokensSeen ?? 0,
      globalClientParams:
        loaded.extra && !hidden ? new Map(saved.filter(([n]) => !n.startsWith(STRATEGY_PREFIX))) : null,
      hidden,
      strategyState: new Map(
        saved.filter(([n]) => n.startsWith(STRATEGY_PREFIX)).map(([n, d]) => [n.slice(STRATEGY_PREFIX.length), d]),
      ),
    },
  };
}
