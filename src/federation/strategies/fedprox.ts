import {
  averageUpdates,
  StatelessStrategy,
  type ClientRoundConfig,
  type ClientUpdate,
  type Params,
} from './strategy.js';

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

/** The client side of FedProx: d/dw of mu/2 ||w - anchor||^2, added to the loss gradient. */
export function addProximalGradient(
  grads: Map<string, Float32Array>,
  params: Map<string, Float32Array>,
  anchor: Map<string, Float32Array>,
  mu: number,
): void {
  for (const [n, w] of params) {
    const g = grads.get(n);
    const a = anchor.get(n);
    if (!g || !a) continue;
    for (let i = 0; i < g.length; i++) g[i] += mu * (w[i] - a[i]);
  }
}
