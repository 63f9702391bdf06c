import { averageUpdates, StatelessStrategy, type ClientRoundConfig, type ClientUpdate, type Params } from './strategy.js';

/**
 * FedProx (Li et al. 2020): clients add the proximal term mu/2 ||w - w_t||^2 to their loss, which
 * keeps each client's parts near the round's global parts (drift control on non-IID silos);
 * aggregation is FedAvg.
 */
export class FedProx extends StatelessStrategy {
  readonly name = 'fedprox';
  constructor(private readonly mu: number) {
    super();
  }
  override configureClient(): ClientRoundConfig {
    return { proximal_mu: this.mu };
  }
  aggregate(_round: number, updates: ClientUpdate[]): Params {
    return averageUpdates(updates);
  }
}
