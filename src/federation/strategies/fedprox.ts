import { z } from 'zod';
import { defineStrategy, type GradientHook } from './plugin.js';
import { averageUpdates, everyClient, StatelessStrategy, type ClientUpdate, type Params } from './strategy.js';

/** federation.strategy.mu: the proximal term's weight (FedProx's mu; FedDyn's alpha). */
export const PROXIMAL_MU = z.number().min(0).default(0.01);

/**
 * FedProx (Li et al. 2020): clients add the proximal term mu/2 ||w - w_t||^2 to their loss, which
 * keeps each client's parts near the round's global parts (drift control on non-IID silos);
 * aggregation is FedAvg. With several trunk replicas (hierarchical mode) each replica is pulled
 * towards the trunk it started the round from the same way.
 */
class FedProx extends StatelessStrategy {
  constructor(private readonly mu: number) {
    super();
  }
  override configureRound() {
    return everyClient({ proximal_mu: this.mu });
  }
  aggregate(_round: number, updates: ClientUpdate[]): Params {
    return averageUpdates(updates);
  }
}

/** d/dw of mu/2 ||w - anchor||^2, added to the loss gradient. */
export function addProximalGradient(grads: Params, params: Params, anchor: Params, mu: number): void {
  for (const [n, w] of params) {
    const g = grads.get(n);
    const a = anchor.get(n);
    if (!g || !a) continue;
    for (let i = 0; i < g.length; i++) g[i] += mu * (w[i] - a[i]);
  }
}

/** The pull towards the parts a round started from; `mu` null: the round's config says (proximal_mu). */
function proximal(mu: number | null): GradientHook {
  let anchor: Params | null = null;
  let weight = 0;
  return {
    startRound(r) {
      weight = mu ?? Number(r.config.proximal_mu ?? 0);
      anchor = weight ? r.start() : null;
    },
    correctGradient(grads, params) {
      if (anchor) addProximalGradient(grads, params, anchor, weight);
    },
  };
}

export const fedprox = defineStrategy({
  options: { mu: PROXIMAL_MU },
  traits: { weightedMean: true, hideable: true, handoff: false },
  server: (o) => new FedProx(o.mu),
  client: () => proximal(null),
  trunk: (o) => proximal(o.mu),
});
