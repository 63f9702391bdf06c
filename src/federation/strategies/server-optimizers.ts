import { z } from 'zod';
import { defineStrategy, MEAN_TRAITS } from './plugin.js';
import {
  averageUpdates,
  everyClient,
  type ClientUpdate,
  type Params,
  type RoundPlan,
  type Strategy,
} from './strategy.js';

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

/** federation.strategy keys these read (SCAFFOLD shares server_lr). */
export const SERVER_LR = z.number().positive().default(1);
const MOMENTUM = z.number().min(0).lt(1).default(0.9);
const BETAS = z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.99]);
const TAU = z.number().positive().default(1e-3);

/** One server step over a parameter's arrays: x (round start), a (the clients' mean), m and v (state), into `next`. */
type Rule = (x: Float32Array, a: Float32Array, m: Float32Array, v: Float32Array, next: Float32Array) => void;

/** The second-moment update of an adaptive rule, per element (v, Delta^2) -> v. */
type SecondMoment = (v: number, d2: number) => number;

const momentumRule =
  (lr: number, beta: number): Rule =>
  (x, a, m, _v, next) => {
    for (let i = 0; i < x.length; i++) {
      m[i] = beta * m[i] + (a[i] - x[i]);
      next[i] = x[i] + lr * m[i];
    }
  };

const adaptiveRule =
  (lr: number, [b1]: [number, number], tau: number, second: SecondMoment): Rule =>
  (x, a, m, v, next) => {
    for (let i = 0; i < x.length; i++) {
      const d = a[i] - x[i];
      m[i] = b1 * m[i] + (1 - b1) * d;
      v[i] = second(v[i], d * d);
      next[i] = x[i] + (lr * m[i]) / (Math.sqrt(v[i]) + tau);
    }
  };

class ServerOptimizer implements Strategy {
  private m: Params = new Map();
  private v: Params = new Map();

  constructor(private readonly rule: Rule) {}

  configureRound(): RoundPlan {
    return everyClient();
  }

  aggregate(_round: number, updates: ClientUpdate[], current: Params | null): Params {
    const avg = averageUpdates(updates);
    if (!current) return avg; // round 1 without a global state yet: nothing to take a step from
    const out: Params = new Map();
    for (const [name, a] of avg) {
      const x = current.get(name)!;
      const next = new Float32Array(a.length);
      this.rule(x, a, this.slot(this.m, name, a.length), this.slot(this.v, name, a.length), next);
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

const ADAPTIVE = { server_lr: SERVER_LR, betas: BETAS, tau: TAU };

export const fedavgm = defineStrategy({
  options: { server_lr: SERVER_LR, momentum: MOMENTUM },
  traits: MEAN_TRAITS,
  server: (o) => new ServerOptimizer(momentumRule(o.server_lr, o.momentum)),
});

export const fedadagrad = defineStrategy({
  options: ADAPTIVE,
  traits: MEAN_TRAITS,
  server: (o) => new ServerOptimizer(adaptiveRule(o.server_lr, o.betas, o.tau, (v, d2) => v + d2)),
});

export const fedyogi = defineStrategy({
  options: ADAPTIVE,
  traits: MEAN_TRAITS,
  server: (o) =>
    new ServerOptimizer(
      adaptiveRule(o.server_lr, o.betas, o.tau, (v, d2) => v - (1 - o.betas[1]) * d2 * Math.sign(v - d2)),
    ),
});

export const fedadam = defineStrategy({
  options: ADAPTIVE,
  traits: MEAN_TRAITS,
  server: (o) =>
    new ServerOptimizer(adaptiveRule(o.server_lr, o.betas, o.tau, (v, d2) => o.betas[1] * v + (1 - o.betas[1]) * d2)),
});
