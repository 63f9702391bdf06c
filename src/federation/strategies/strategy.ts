// The one plug-in point for federation policy, like Flower's Strategy: what each client gets with
// its round (`configureClient`) and how the round's client updates become the next global
// client-part parameters (`aggregate`). Transport, retries and scheduling stay out. A strategy is
// one file under this folder plus one line in `registry.ts` plus its test.

import type { OptimizerConfig } from '../../training/optimizer.js';

/** Client-part parameters by name. */
export type Params = Map<string, Float32Array>;

/** Element counts of the tensors a client uploads at round end, by name. */
export type ClientPartSpec = ReadonlyMap<string, number>;

export interface ClientUpdate {
  clientId: string;
  /** FedAvg weight: the examples the server saw the client train on this round. */
  numExamples: number;
  params: Params;
  /**
   * privacy.hide_aggregate: the secure aggregate as the server holds it, a ring sum masked with a
   * secret only clients have (`params` is then empty): relayed to clients, never aggregated here.
   */
  hidden?: { round: number; sum: Uint32Array; total: number };
}

/** What a client is told with its round start (travels as JSON in `RoundStart.config_json`). */
export interface ClientRoundConfig {
  /** FedProx: gradient += mu (w - w_round_start) on the client parts. */
  proximal_mu?: number;
  /** Start the round with fresh optimizer moments. */
  reset_optimizer?: boolean;
  /** SCAFFOLD: correct gradients with the control variates and upload the change of c_i. */
  scaffold?: boolean;
}

export interface Strategy {
  readonly name: string;
  /**
   * 'average': every client of a round starts from the same global parts and the results are
   * aggregated. 'relay': clients take turns, each starting from the previous client's result
   * (vanilla split learning; sequential mode), and the last result is the round's.
   */
  readonly handoff: 'average' | 'relay';
  configureClient(round: number): ClientRoundConfig;
  /**
   * What a client uploads at round end, given its trainable parts (default: the parts). The server
   * accepts exactly these tensors (names, sizes) and nothing else.
   */
  uploadSpec?(parts: ClientPartSpec, optimizer: OptimizerConfig): ClientPartSpec;
  /** `current` = the global parts the round started from (null before the first aggregation). */
  aggregate(round: number, updates: ClientUpdate[], current: Params | null): Params;
  /** Server-side state (momentum, moments), saved in round checkpoints and restored on --resume. */
  state(): Params;
  restore(state: Params): void;
}

/** Sample-weighted mean of parameter sets (equal weights when all are 0); `alloc` makes each result array (zeroed). */
export function weightedAverage(
  sets: { weight: number; params: Params }[],
  alloc: (n: number) => Float32Array = (n) => new Float32Array(n),
): Params {
  if (sets.length === 0) throw new Error('no parameter sets to average');
  const total = sets.reduce((a, s) => a + s.weight, 0);
  const weights = sets.map((s) => (total > 0 ? s.weight / total : 1 / sets.length));
  const out: Params = new Map();
  for (const [name, first] of sets[0].params) {
    const arrays = sets.map((s) => s.params.get(name));
    if (arrays.some((p) => !p || p.length !== first.length))
      throw new Error(`cannot average ${name}: a set has no or a differently shaped tensor`);
    // Accumulated in float32, one set at a time, into the only array allocated: ~2x faster than a
    // float64 accumulator for a `small` trunk (4.7 M values, 2 sets: 28 vs 51 ms warm), at an
    // error of a few ulp, far below what one optimizer step changes.
    const mean = alloc(first.length);
    arrays.forEach((p, k) => {
      const w = weights[k];
      for (let i = 0; i < mean.length; i++) mean[i] += w * p![i];
    });
    out.set(name, mean);
  }
  return out;
}

export const averageUpdates = (updates: ClientUpdate[]): Params =>
  weightedAverage(updates.map((u) => ({ weight: u.numExamples, params: u.params })));

/** Base for strategies without server state. */
export abstract class StatelessStrategy implements Strategy {
  abstract readonly name: string;
  readonly handoff: 'average' | 'relay' = 'average';
  configureClient(_round: number): ClientRoundConfig {
    return {};
  }
  abstract aggregate(round: number, updates: ClientUpdate[], current: Params | null): Params;
  state(): Params {
    return new Map();
  }
  restore(_state: Params): void {}
}
