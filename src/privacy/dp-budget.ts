import type { ExperimentConfig } from '../config/schema.js';
import { RdpAccountant, type SampledGaussian } from './accountant.js';

// What a run's differential privacy has spent, per round: DP-FedAvg's user-level ε (one sampled
// Gaussian step per round, sampling rate = clients per round / clients: every client takes part in
// every round here, so 1) and dp.activations' example-level ε per client (one step per batch of
// h_A it sent, sampling rate = batch / its silo's size, as Opacus takes it for shuffled batches).
// The two protect different units (a client's whole data, one example) and are reported apart;
// `epsilon` is the larger, which privacy.target_epsilon bounds.

/** A client's training in a round as the server counted it: steps of h_A, and the examples in its silo. */
export interface ClientSpend {
  steps: number;
  examples: number;
}

/** The round record's `privacy` entry (metrics.jsonl): ε so far and what this round spent. */
export interface PrivacyRecord {
  delta: number;
  /** The larger of the two below (null: nothing is accounted; Infinity is written as null by JSON too). */
  epsilon: number | null;
  user_epsilon?: number;
  /** The largest over clients (the smallest silo spends most), and each client's. */
  example_epsilon?: number;
  example_epsilon_by_client?: Record<string, number>;
  /** Steps of h_A per client this round (what a resumed run replays). */
  client_steps?: Record<string, ClientSpend>;
}

export class PrivacyLedger {
  private readonly user = new RdpAccountant();
  private readonly examples = new Map<string, RdpAccountant>();
  private readonly delta: number;

  constructor(private readonly cfg: ExperimentConfig) {
    this.delta = cfg.privacy.delta;
  }

  get accounts(): boolean {
    const dp = this.cfg.privacy.dp;
    return dp.updates.enabled || dp.activations.enabled;
  }

  /** One round of DP-FedAvg (null when it is off). */
  private userRound(): SampledGaussian | null {
    const dp = this.cfg.privacy.dp.updates;
    const perRound = this.cfg.federation.clients; // every client is asked every round
    return dp.enabled
      ? { samplingRate: perRound / this.cfg.federation.clients, noiseMultiplier: dp.noise_multiplier, steps: 1 }
      : null;
  }

  /** `steps` batches of one client's h_A (null when dp.activations is off). */
  private exampleSteps(c: ClientSpend): SampledGaussian | null {
    const a = this.cfg.privacy.dp.activations;
    if (!a.enabled || c.steps === 0) return null;
    const q = Math.min(1, this.cfg.data.batch_size / Math.max(1, c.examples));
    return { samplingRate: q, noiseMultiplier: a.noise_multiplier, steps: c.steps };
  }

  /** Record a round's spending. */
  spend(clients: Record<string, ClientSpend>): PrivacyRecord {
    const u = this.userRound();
    if (u) this.user.compose(u);
    for (const [id, c] of Object.entries(clients)) {
      const m = this.exampleSteps(c);
      if (!m) continue;
      let acc = this.examples.get(id);
      if (!acc) this.examples.set(id, (acc = new RdpAccountant()));
      acc.compose(m);
    }
    return { ...this.current(), ...(this.cfg.privacy.dp.activations.enabled ? { client_steps: clients } : {}) };
  }

  /** ε so far. */
  current(): PrivacyRecord {
    const user = this.userRound() ? this.user.epsilon(this.delta).epsilon : undefined;
    const byClient = Object.fromEntries([...this.examples].map(([id, a]) => [id, a.epsilon(this.delta).epsilon]));
    const example = this.cfg.privacy.dp.activations.enabled ? Math.max(0, ...Object.values(byClient)) : undefined;
    const all = [user, example].filter((e): e is number => e !== undefined);
    return {
      delta: this.delta,
      epsilon: all.length ? Math.max(...all) : null,
      ...(user !== undefined ? { user_epsilon: user } : {}),
      ...(example !== undefined ? { example_epsilon: example, example_epsilon_by_client: byClient } : {}),
    };
  }

  /** ε if `rounds` more rounds ran with these clients each taking local_steps (nothing is recorded). */
  planned(rounds: number, clients: Record<string, number>): number | null {
    const trial = new PrivacyLedger(this.cfg);
    trial.user.restore(this.user.state());
    for (const [id, a] of this.examples) trial.examples.set(id, new RdpAccountant()).get(id)!.restore(a.state());
    const steps = this.cfg.federation.local_steps;
    const spend = Object.fromEntries(Object.entries(clients).map(([id, examples]) => [id, { steps, examples }]));
    for (let r = 0; r < rounds; r++) trial.spend(spend);
    return rounds > 0 || this.accounts ? trial.current().epsilon : null;
  }

  /** A resumed run: replay the rounds its history recorded. */
  replay(records: readonly { privacy?: PrivacyRecord }[]): void {
    for (const r of records) this.spend(r.privacy?.client_steps ?? {});
  }
}

/** The refusal when a run would spend more than its budget, or null. */
export function overBudget(cfg: ExperimentConfig, epsilon: number | null, what: string): string | null {
  const target = cfg.privacy.target_epsilon;
  if (target === null || epsilon === null || epsilon <= target) return null;
  return `${what} would spend epsilon ${Number.isFinite(epsilon) ? epsilon.toFixed(3) : 'infinity'} at delta ${cfg.privacy.delta}, over privacy.target_epsilon ${target}; raise the noise multiplier (flglm privacy noise gives the one a budget needs), or run fewer rounds or local steps`;
}
