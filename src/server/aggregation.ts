import type { ExperimentConfig } from '../config/schema.js';
import { splitOptimizerState, withOptimizerState } from '../federation/optimizer-handoff.js';
import {
  averageUpdates,
  type ClientPartSpec,
  type ClientUpdate,
  type Params,
  type Strategy,
} from '../federation/strategies/strategy.js';
import { strategyTraits } from '../federation/strategies/lookup.js';
import { isDeltaEncoded, quantizeDelta, rebuiltParams } from '../federation/update-encoding.js';
import { trainableData, type ParamStore } from '../model/params.js';
import { privatizeMean } from '../privacy/dp-updates.js';

/**
 * A round's client updates -> the next global client parts: the strategy's aggregate, and with
 * `client_optimizer: average` the optimizer moments averaged beside it by sample weight (the
 * strategy sees the parameters only: a server optimizer must not take steps on moments). With
 * `update_encoding: float16-delta` it also keeps the base the deltas are taken from.
 */
export class RoundAggregator {
  private readonly averagesOptimizer: boolean;
  /** Turns hand the parts from client to client, optimizer state included (a hand-off strategy). */
  private readonly handoff: boolean;
  /** float16-delta: the initial client parts (round 1's base); null with float32 updates. */
  private initialParts: Params | null = null;

  constructor(
    private readonly strategy: Strategy,
    private readonly cfg: ExperimentConfig,
  ) {
    this.handoff = strategyTraits(cfg.federation.strategy.name).handoff;
    this.averagesOptimizer = cfg.federation.strategy.client_optimizer === 'average' && !this.handoff;
  }

  /**
   * What a client uploads: its parts, plus what its strategy adds (SCAFFOLD: delta c_i) and the
   * optimizer state where it travels (a hand-off, or averaged moments). `store` holds the initial parts (float16-delta's first base).
   */
  uploadSpec(parts: ClientPartSpec, store: ParamStore): ClientPartSpec {
    if (isDeltaEncoded(this.cfg.federation.update_encoding))
      this.initialParts = new Map(
        [...parts.keys()].map((n) => [n, Float32Array.from(trainableData(store.get(n)!, n))]),
      );
    const spec = this.strategy.uploadSpec?.(parts) ?? parts;
    return this.averagesOptimizer || this.handoff ? withOptimizerState(spec, this.cfg.optimizer) : spec;
  }

  /** The parameters (no control variates, no moments) float16 deltas are taken from; null with float32 updates. */
  deltaBase(current: Params | null): Params | null {
    if (!this.initialParts) return null;
    return current ? new Map([...this.initialParts.keys()].map((n) => [n, current.get(n)!])) : this.initialParts;
  }

  /** The next global parts and, with float16-delta, their deltas from the round's base (which is what clients rebuild). */
  aggregate(
    round: number,
    updates: ClientUpdate[],
    current: Params | null,
  ): { next: Params; deltas: Map<string, Uint16Array> | null } {
    const base = this.deltaBase(current);
    const next = this.combine(round, updates, current);
    if (!base) return { next, deltas: null };
    const deltas = quantizeDelta(base, next);
    return { next: rebuiltParams(base, next, deltas), deltas };
  }

  private combine(round: number, updates: ClientUpdate[], current: Params | null): Params {
    // Averaging strategies see updates in a fixed order (sums are order-sensitive in float); a
    // hand-off's order is the order of its turns.
    if (!this.handoff) updates.sort((a, b) => a.clientId.localeCompare(b.clientId));
    if (this.cfg.privacy.dp.updates.enabled) return this.strategy.aggregate(round, [this.dpMean(updates)], current);
    if (!this.averagesOptimizer) return this.strategy.aggregate(round, updates, current);
    const [plain, moments] = splitOptimizerState(updates);
    const next = this.strategy.aggregate(round, plain, current);
    for (const [n, v] of averageUpdates(moments)) next.set(n, v);
    return next;
  }

  /** DP-FedAvg: the equally weighted mean of the clipped updates (the config allows mean strategies only), noised here with noise: server. */
  private dpMean(updates: ClientUpdate[]): ClientUpdate {
    const clients = updates.reduce((a, u) => a + u.numExamples, 0);
    const mean = averageUpdates(updates);
    privatizeMean(this.cfg, mean, clients, this.cfg.privacy.dp.updates.clip_norm);
    return { clientId: 'dp-mean', numExamples: clients, params: mean };
  }
}
