import { averageUpdates, type ClientRoundConfig, type ClientUpdate, type Params, type Strategy } from './strategy.js';

/**
 * Server-side optimizers on FedAvg's pseudo-gradient (Reddi et al. 2021, "Adaptive Federated
 * Optimization"; FedAvgM: Hsu et al. 2019). Per round t, with x the global parts the round started
 * from and Delta = weighted mean of the clients' parts - x:
 *
 *   fedavgm:    v = beta v + Delta;                                  x += lr v
 *   fedadagrad: m = b1 m + (1-b1) Delta;  v = v + Delta^2;           x += lr m / (sqrt(v) + tau)
 *   fedyogi:    m = ...;  v = v - (1-b2) Delta^2 sign(v - Delta^2);  x += lr m / (sqrt(v) + tau)
 *   fedadam:    m = ...;  v = b2 v + (1-b2) Delta^2;                 x += lr m / (sqrt(v) + tau)
 *
 * m and v start at 0; no bias correction (as in the paper). With N clients each taking 1/N of the
 * steps, a server learning rate above 1 is what these offer against FedAvg's effective large batch.
 */
export type ServerOptimizerKind = 'fedavgm' | 'fedadagrad' | 'fedyogi' | 'fedadam';

export interface ServerOptimizerOptions {
  lr: number;
  momentum: number;
  betas: [number, number];
  tau: number;
}

export class ServerOptimizer implements Strategy {
  readonly handoff = 'average' as const;
  private m: Params = new Map();
  private v: Params = new Map();

  constructor(
    readonly name: ServerOptimizerKind,
    private readonly o: ServerOptimizerOptions,
  ) {}

  configureClient(): ClientRoundConfig {
    return {};
  }

  aggregate(_round: number, updates: ClientUpdate[], current: Params | null): Params {
    const avg = averageUpdates(updates);
    if (!current) return avg; // round 1 without a global state yet: nothing to take a step from
    const out: Params = new Map();
    const {
      lr,
      momentum,
      betas: [b1, b2],
      tau,
    } = this.o;
    for (const [name, a] of avg) {
      const x = current.get(name)!;
      const m = this.slot(this.m, name, a.length);
      const v = this.slot(this.v, name, a.length);
      const next = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) {
        const d = a[i] - x[i];
        if (this.name === 'fedavgm') {
          m[i] = momentum * m[i] + d;
          next[i] = x[i] + lr * m[i];
          continue;
        }
        m[i] = b1 * m[i] + (1 - b1) * d;
        const d2 = d * d;
        if (this.name === 'fedadagrad') v[i] += d2;
        else if (this.name === 'fedyogi') v[i] -= (1 - b2) * d2 * Math.sign(v[i] - d2);
        else v[i] = b2 * v[i] + (1 - b2) * d2;
        next[i] = x[i] + (lr * m[i]) / (Math.sqrt(v[i]) + tau);
      }
      out.set(name, next);
    }
    return out;
  }

  private slot(store: Params, name: string, n: number): Float32Array {
    let s = store.get(name);
    if (!s) store.set(name, (s = new Float32Array(n)));
    return s;
  }

  state(): Params {
    return new Map([
      ...[...this.m].map(([n, t]) => [`m:${n}`, t] as const),
      ...[...this.v].map(([n, t]) => [`v:${n}`, t] as const),
    ]);
  }

  restore(state: Params): void {
    for (const [key, t] of state) {
      const [slot, ...rest] = key.split(':');
      (slot === 'm' ? this.m : this.v).set(rest.join(':'), t);
    }
  }
}
