// The one plug-in point for federation policy, like Flower's Strategy: what each client gets with
// its round (`configureClient`) and how the round's client updates become the next global
// client-part parameters (`aggregate`). Transport, retries and scheduling stay out. A strategy is
// one file under this folder plus one line in `registry.ts` plus its test.

/** Client-part parameters by name. */
export type Params = Map<string, Float32Array>;

export interface ClientUpdate {
  clientId: string;
  /** FedAvg weight: the examples the server saw the client train on this round. */
  numExamples: number;
  params: Params;
}

/** What a client is told with its round start (travels as JSON in `RoundStart.config_json`). */
export interface ClientRoundConfig {
  /** FedProx: gradient += mu (w - w_round_start) on the client parts. */
  proximal_mu?: number;
  /** Start the round with fresh optimizer moments. */
  reset_optimizer?: boolean;
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
  /** `current` = the global parts the round started from (null before the first aggregation). */
  aggregate(round: number, updates: ClientUpdate[], current: Params | null): Params;
  /** Server-side state (momentum, moments), saved in round checkpoints and restored on --resume. */
  state(): Params;
  restore(state: Params): void;
}

/** Sample-weighted mean of parameter sets (equal weights when all are 0). */
export function weightedAverage(sets: { weight: number; params: Params }[]): Params {
  if (sets.length === 0) throw new Error('no parameter sets to average');
  const total = sets.reduce((a, s) => a + s.weight, 0);
  const out: Params = new Map();
  for (const [name, first] of sets[0].params) {
    const acc = new Float64Array(first.length);
    for (const s of sets) {
      const p = s.params.get(name);
      if (!p || p.length !== first.length) throw new Error(`cannot average ${name}: a set has no or a differently shaped tensor`);
      const w = total > 0 ? s.weight / total : 1 / sets.length;
      for (let i = 0; i < p.length; i++) acc[i] += w * p[i];
    }
    out.set(name, Float32Array.from(acc));
  }
  return out;
}

export const averageUpdates = (updates: ClientUpdate[]): Params => weightedAverage(updates.map((u) => ({ weight: u.numExamples, params: u.params })));

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
