import type { ExperimentConfig } from '../config/schema.js';
import { splitOptimizerState, withOptimizerState } from '../federation/optimizer-handoff.js';
import { averageUpdates, type ClientPartSpec, type ClientUpdate, type Params, type Strategy } from '../federation/strategies/strategy.js';

/**
 * A round's client updates -> the next global client parts: the strategy's aggregate, and with
 * `client_optimizer: average` the optimizer moments averaged beside it by sample weight (the
 * strategy sees the parameters only: a server optimizer must not take steps on moments).
 */
export class RoundAggregator {
  private readonly averagesOptimizer: boolean;

  constructor(private readonly strategy: Strategy, private readonly cfg: ExperimentConfig) {
    this.averagesOptimizer = cfg.federation.strategy.client_optimizer === 'average' && strategy.handoff === 'average';
  }

  /** What a client uploads: its parts, plus what its strategy adds (relay: optimizer state; scaffold: delta c_i) and averaged moments. */
  uploadSpec(parts: ClientPartSpec): ClientPartSpec {
    const spec = this.strategy.uploadSpec?.(parts, this.cfg.optimizer) ?? parts;
    return this.averagesOptimizer ? withOptimizerState(spec, this.cfg.optimizer) : spec;
  }

  aggregate(round: number, updates: ClientUpdate[], current: Params | null): Params {
    // Averaging strategies see updates in a fixed order (sums are order-sensitive in float);
    // relay's order is the hand-off order.
    if (this.strategy.handoff === 'average') updates.sort((a, b) => a.clientId.localeCompare(b.clientId));
    if (!this.averagesOptimizer) return this.strategy.aggregate(round, updates, current);
    const [plain, moments] = splitOptimizerState(updates);
    const next = this.strategy.aggregate(round, plain, current);
    for (const [n, v] of averageUpdates(moments)) next.set(n, v);
    return next;
  }
}
