import type { ExperimentConfig } from '../config/schema.js';
import { DEFAULT_ORDERS, epsilonFromRdp, rdp, type SampledGaussian } from './accountant.js';

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

/** One step's RDP per order, by (q, σ): a round costs steps × it (computing it takes up to 0.25 s). */
const oneStep = new Map<string, number[]>();
function rdpOf(m: SampledGaussian): number[] {
  const key = `${m.samplingRate}:${m.noiseMultiplier}`;
  let v = oneStep.get(key);
  if (!v) oneStep.set(key, (v = rdp({ ...m, steps: 1 })));
  return v.map((r) => m.steps * r);
}

/** RDP spent per order, added to as mechanisms run. */
class Spent {
  readonly rdp = DEFAULT_ORDERS.map(() => 0);
  add(m: SampledGaussian): void {
    rdpOf(m).forEach((r, i) => (this.rdp[i] += r));
  }
  copy(): Spent {
    const c = new Spent();
    this.rdp.forEach((r, i) => (c.rdp[i] = r));
    return c;
  }
  epsilon(delta: number): number {
    return epsilonFromRdp(this.rdp, DEFAULT_ORDERS, delta).epsilon;
  }
}

export class PrivacyLedger {
  private user = new Spent();
  private readonly examples = new Map<string, Spent>();
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
    // With dL/dh_B clipped and noised too, a step releases two Gaussians of one batch, each with
    // sensitivity its clip norm and noise sigma times it: one Gaussian of multiplier sigma / sqrt(2).
    const sigma = a.gradient_clip_norm !== null ? a.noise_multiplier / Math.SQRT2 : a.noise_multiplier;
    return { samplingRate: q, noiseMultiplier: sigma, steps: c.steps };
  }

  /** Record a round's spending. */
  spend(clients: Record<string, ClientSpend>): PrivacyRecord {
    const u = this.userRound();
    if (u) this.user.add(u);
    for (const [id, c] of Object.entries(clients)) {
      const m = this.exampleSteps(c);
      if (!m) continue;
      let acc = this.examples.get(id);
      if (!acc) this.examples.set(id, (acc = new Spent()));
      acc.add(m);
    }
    return { ...this.current(), ...(this.cfg.privacy.dp.activations.enabled ? { client_steps: clients } : {}) };
  }

  /** ε so far. */
  current(): PrivacyRecord {
    const user = this.userRound() ? this.user.epsilon(this.delta) : undefined;
    const byClient = Object.fromEntries([...this.examples].map(([id, a]) => [id, a.epsilon(this.delta)]));
    const example = this.cfg.privacy.dp.activations.enabled ? Math.max(0, ...Object.values(byClient)) : undefined;
    const all = [user, example].filter((e): e is number => e !== undefined);
    return {
      delta: this.delta,
      epsilon: all.length ? Math.max(...all) : null,
      ...(user !== undefined ? { user_epsilon: user } : {}),
      ...(example !== undefined ? { example_epsilon: example, example_epsilon_by_client: byClient } : {}),
    };
  }

  /** ε if `rounds` more rounds ran, each client spending as given (nothing is recorded). */
  planned(rounds: number, clients: Record<string, ClientSpend>): number | null {
    const trial = new PrivacyLedger(this.cfg);
    trial.user = this.user.copy();
    for (const [id, a] of this.examples) trial.examples.set(id, a.copy());
    for (let r = 0; r < rounds; r++) trial.spend(clients);
    return trial.current().epsilon;
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
