import { defineStrategy, type ClientHalf } from './plugin.js';
import { SERVER_LR } from './server-optimizers.js';
import {
  everyClient,
  weightedAverage,
  type ClientPartSpec,
  type ClientUpdate,
  type Params,
  type RoundPlan,
  type Strategy,
} from './strategy.js';

/**
 * SCAFFOLD (Karimireddy et al. 2020): control variates correct each client's drift towards its own
 * silo. The server keeps c (one tensor per client-part parameter) and sends it with the global
 * parts; client i keeps c_i and trains with the gradient g + c - c_i, then sets c_i to the mean raw
 * gradient of its round (option I of the paper, taken at the local iterates: with AdamW the paper's
 * option II, (x - y) / (K lr), would measure update steps, not gradients) and sends
 * delta_c_i = c_i(new) - c_i(old) with its parts. Server, over the round's clients S of N:
 *
 *   x <- x + lr_g * mean_w(y_i - x)        (sample-weighted, as FedAvg)
 *   c <- c + |S| / N * mean(delta_c_i)
 *
 * c travels as `scaffold.c.<param>` entries of the global parts, delta_c_i as
 * `scaffold.delta_c.<param>` entries of a client's upload. c_i lives in the client's memory, so a
 * restarted client starts again from c_i = 0.
 */
export const CONTROL_PREFIX = 'scaffold.c.';
export const CONTROL_DELTA_PREFIX = 'scaffold.delta_c.';

class Scaffold implements Strategy {
  private c: Params = new Map();

  constructor(
    private readonly serverLr: number,
    private readonly totalClients: number,
  ) {}

  configureRound(): RoundPlan {
    return everyClient({ scaffold: true });
  }

  uploadSpec(parts: ClientPartSpec): ClientPartSpec {
    return new Map([...parts, ...[...parts].map(([n, size]) => [`${CONTROL_DELTA_PREFIX}${n}`, size] as const)]);
  }

  aggregate(_round: number, updates: ClientUpdate[], current: Params | null): Params {
    if (updates.length === 0) throw new Error('scaffold: no client finished the round');
    // The parameters' sample-weighted mean, as FedAvg takes it; the delta_c entries are summed below.
    const avg = weightedAverage(
      updates.map((u) => ({
        weight: u.numExamples,
        params: new Map([...u.params].filter(([n]) => !n.startsWith(CONTROL_DELTA_PREFIX))),
      })),
    );
    const scale = 1 / Math.max(this.totalClients, updates.length); // |S| / N * mean = sum / N
    const out: Params = new Map();
    for (const [name, mean] of avg) {
      const x = current?.get(name);
      // Round 1 has no global parts yet (every client started from the same initialisation).
      out.set(name, x ? mean.map((m, i) => x[i] + this.serverLr * (m - x[i])) : mean);
      const c = this.c.get(name) ?? new Float32Array(mean.length);
      for (const u of updates) {
        const d = u.params.get(`${CONTROL_DELTA_PREFIX}${name}`);
        if (d) for (let i = 0; i < c.length; i++) c[i] += scale * d[i];
      }
      this.c.set(name, c);
    }
    for (const [name, c] of this.c) out.set(`${CONTROL_PREFIX}${name}`, c);
    return out;
  }

  state(): Params {
    return new Map(this.c);
  }

  restore(state: Params): void {
    this.c = new Map(state);
  }
}

/**
 * The client side: its own control variate c_i, the correction c - c_i added to every step's
 * gradient, and the raw gradients of the round, whose mean becomes the next c_i.
 */
export class ScaffoldClient implements ClientHalf {
  private own = new Map<string, Float32Array>();
  private server = new Map<string, Float32Array>();
  private sum = new Map<string, Float64Array>();
  private steps = 0;

  /** The server's c for a parameter travels as `scaffold.c.<param>`. */
  incoming(name: string): string | undefined {
    return name.startsWith(CONTROL_PREFIX) ? name.slice(CONTROL_PREFIX.length) : undefined;
  }

  receive(name: string, data: Float32Array): void {
    this.server.set(name.slice(CONTROL_PREFIX.length), Float32Array.from(data));
  }

  /** Record the raw gradients, then add c - c_i to them (in place). */
  correctGradient(grads: Params): void {
    this.steps++;
    for (const [n, g] of grads) {
      let s = this.sum.get(n);
      if (!s) this.sum.set(n, (s = new Float64Array(g.length)));
      for (let i = 0; i < g.length; i++) s[i] += g[i];
      const c = this.server.get(n),
        ci = this.own.get(n);
      if (c) for (let i = 0; i < g.length; i++) g[i] += c[i];
      if (ci) for (let i = 0; i < g.length; i++) g[i] -= ci[i];
    }
  }

  /** End of the round: c_i <- the mean raw gradient; returns delta_c_i as upload entries. */
  finishRound(params: Params): [string, Float32Array][] {
    const out: [string, Float32Array][] = [];
    for (const [n, p] of params) {
      const s = this.sum.get(n);
      const next = new Float32Array(p.length);
      if (s && this.steps > 0) for (let i = 0; i < p.length; i++) next[i] = s[i] / this.steps;
      const old = this.own.get(n);
      const delta = new Float32Array(p.length);
      for (let i = 0; i < p.length; i++) delta[i] = next[i] - (old ? old[i] : 0);
      this.own.set(n, next);
      out.push([`${CONTROL_DELTA_PREFIX}${n}`, delta]);
    }
    this.sum.clear();
    this.steps = 0;
    return out;
  }
}

export const scaffold = defineStrategy({
  options: { server_lr: SERVER_LR },
  traits: { weightedMean: { needs: 'per-client control variates' }, hideable: false, handoff: false },
  server: (o, federation) => new Scaffold(o.server_lr, federation.clients),
  client: () => new ScaffoldClient(),
});
