import { PROXIMAL_MU } from './fedprox.js';
import { defineStrategy, type ClientHalf } from './plugin.js';
import { averageUpdates, type ClientUpdate, type Params, type RoundPlan, type Strategy } from './strategy.js';

/**
 * FedDyn (Acar et al. 2021, "Federated learning based on dynamic regularization"): client k
 * minimises L_k(w) - <g_k, w> + alpha/2 ||w - w_t||^2, where g_k, its own state, tracks its
 * gradient at its last round's end (g_k -= alpha (w_k - w_t) after each round), so at a fixed point
 * the clients' optima agree with the global one despite non-IID silos. The server keeps
 * h = mean of the g_k (h -= alpha |S| / N mean_w(w_k - w_t)) and moves the global parts past the
 * clients' mean by it: w_{t+1} = mean_w(w_k) - h / alpha. alpha is federation.strategy.mu.
 *
 * The server never holds the client parts' initialisation, so round 1 (no global parts yet) is
 * FedAvg with the proximal term on both sides and neither g_k nor h changes; the dynamic terms
 * start with round 2. g_k lives in the client's memory: a restarted client starts again from 0.
 */
class FedDyn implements Strategy {
  private h: Params = new Map();

  constructor(
    private readonly alpha: number,
    private readonly totalClients: number,
  ) {}

  configureRound(_round: number, _clients: unknown, start: Params | null): RoundPlan {
    const config = { feddyn_alpha: this.alpha, feddyn_dynamic: start !== null };
    return { config: () => config };
  }

  aggregate(_round: number, updates: ClientUpdate[], current: Params | null): Params {
    if (updates.length === 0) throw new Error('feddyn: no client finished the round');
    const mean = averageUpdates(updates);
    if (!current) return mean;
    const share = updates.length / Math.max(this.totalClients, updates.length);
    const out: Params = new Map();
    for (const [name, m] of mean) {
      const x = current.get(name)!;
      const h = this.h.get(name) ?? new Float32Array(m.length);
      const next = new Float32Array(m.length);
      for (let i = 0; i < m.length; i++) {
        h[i] -= this.alpha * share * (m[i] - x[i]);
        next[i] = m[i] - h[i] / this.alpha;
      }
      this.h.set(name, h);
      out.set(name, next);
    }
    return out;
  }

  state(): Params {
    return new Map(this.h);
  }

  restore(state: Params): void {
    this.h = new Map(state);
  }
}

/** The client side: g_k, the linear term's pull, the proximal term, and g_k's update at round end. */
class FedDynClient implements ClientHalf {
  private readonly g = new Map<string, Float32Array>();
  private alpha = 0;
  private dynamic = false;
  private start: Params | null = null;

  startRound(r: { start(): Params; config: Record<string, unknown> }): void {
    this.alpha = Number(r.config.feddyn_alpha ?? 0);
    this.dynamic = Boolean(r.config.feddyn_dynamic);
    this.start = this.alpha ? r.start() : null;
  }

  /** grad += -g_k + alpha (w - w_t). */
  correctGradient(grads: Params, params: Params): void {
    if (!this.start) return;
    for (const [n, g] of grads) {
      const w = params.get(n),
        w0 = this.start.get(n),
        gk = this.g.get(n);
      if (!w || !w0) continue;
      for (let i = 0; i < g.length; i++) g[i] += this.alpha * (w[i] - w0[i]) - (gk ? gk[i] : 0);
    }
  }

  /** g_k -= alpha (w_k - w_t); nothing extra travels. */
  finishRound(params: Params): [string, Float32Array][] {
    if (!this.start || !this.dynamic) return [];
    for (const [n, w] of params) {
      const w0 = this.start.get(n)!;
      const gk = this.g.get(n) ?? new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) gk[i] -= this.alpha * (w[i] - w0[i]);
      this.g.set(n, gk);
    }
    return [];
  }
}

export const feddyn = defineStrategy({
  options: { mu: PROXIMAL_MU },
  traits: { weightedMean: { needs: 'the number of clients behind the mean' }, hideable: false, handoff: false },
  server: (o, federation) => new FedDyn(o.mu, federation.clients),
  client: () => new FedDynClient(),
});
