import type { ExperimentConfig } from '../config/schema.js';
import type { ClientPartSpec, ClientUpdate, Params, RoundPlan } from '../federation/strategies/strategy.js';
import type { ModelConfig } from '../model/config.js';
import type { Capture } from '../privacy/capture.js';
import type { ClientMessage } from '../protocol/messages.js';
import { ProtocolError } from '../protocol/tensors.js';
import { meanWeight } from '../privacy/dp-updates.js';
import type { ClientLimits } from './client-limits.js';
import { decodeClientParameters } from './client-update.js';
import type { RoundContext, TrunkOps } from './modes/mode.js';
import type { Participant } from './participant.js';
import { sendParams, sendRoundKey } from './round-messages.js';
import { secureCollect, type SecurePhaseSeconds } from './secure-collect.js';
import { ServerLink, type LinkSetup } from './step-link.js';

/** What a training round needs from the server that runs it. */
export interface RoundDeps {
  cfg: ExperimentConfig;
  model: ModelConfig;
  limits: ClientLimits;
  partSpec: ClientPartSpec;
  /** The strategy's configuration of this round (configure_fit). */
  plan: RoundPlan;
  startParams: Params | null;
  /** update_encoding float16-delta: the parameters this round's updates are differences from (else null). */
  deltaBase: Params | null;
  replicaCount: number;
  trunk(replica: number): TrunkOps;
  drop(s: Participant, round: number, err: Error): void;
  onReceive?: (clientId: string, message: ClientMessage) => void;
  onMetric?: (record: Record<string, unknown>) => void;
  /** `--capture`: keeps the last received h_A of each client (measuring the inversion attack). */
  capture?: Capture | null;
}

/** The step link's setup for a round or an evaluation pass. */
export function linkSetup(
  d: Pick<RoundDeps, 'cfg' | 'model' | 'limits' | 'onReceive' | 'capture'>,
  round: number,
  evaluate: boolean,
): LinkSetup {
  const { batch_size: B, seq_len: S } = d.cfg.data;
  return {
    round,
    evaluate,
    shape: [B, S, d.model.hidden_size],
    stepTensorBytes: d.limits.stepTensorBytes,
    maxRms: d.cfg.transport.limits.max_value_rms,
    timeoutMs: d.cfg.federation.client_timeout_ms,
    onReceive: d.onReceive,
    capture: d.capture,
  };
}

/**
 * One training round as the modes see it (`RoundContext`): opening the round for a client, its
 * step link, the trunk replicas, collecting and checking its parameters, and the round's record.
 */
export class Round implements RoundContext {
  readonly losses: number[] = [];
  tokens = 0;
  /** Clients dropped during this round. */
  readonly dropped = new Set<string>();
  readonly secure?: (survivors: Participant[]) => Promise<ClientUpdate[]>;
  /** Seconds the secure-aggregation exchanges took, per exchange (a round-end phase of the round record). */
  readonly securePhases: SecurePhaseSeconds = {};
  private readonly links = new Map<string, ServerLink>();
  private readonly setup: LinkSetup;

  constructor(
    readonly round: number,
    readonly participants: readonly Participant[],
    private readonly d: RoundDeps,
  ) {
    this.setup = { ...linkSetup(d, round, false), partLength: [...d.partSpec.values()].reduce((a, n) => a + n, 0) };
    if (d.cfg.privacy.secure_aggregation.enabled)
      this.secure = (survivors) => secureCollect(this, survivors, d.partSpec, this.securePhases);
  }

  get cfg(): ExperimentConfig {
    return this.d.cfg;
  }
  get plan(): RoundPlan {
    return this.d.plan;
  }
  get startParams(): Params | null {
    return this.d.startParams;
  }
  get replicaCount(): number {
    return this.d.replicaCount;
  }

  openRound(s: Participant, o: { from?: Params; steps?: number } = {}): void {
    sendRoundKey(s, this.round);
    if (o.from) sendParams(s, this.round, o.from);
    const config = {
      ...this.plan.config(s.id),
      ...(this.cfg.federation.strategy.client_optimizer === 'reset' ? { reset_optimizer: true } : {}),
    };
    const localSteps = o.steps ?? this.cfg.federation.local_steps;
    s.send({ roundStart: { round: this.round, localSteps, configJson: JSON.stringify(config), evaluate: false } });
  }

  link(s: Participant): ServerLink {
    let link = this.links.get(s.id);
    if (!link) this.links.set(s.id, (link = new ServerLink(s, this.setup)));
    return link;
  }

  trunk(replica: number): TrunkOps {
    return this.d.trunk(replica);
  }

  drop(s: Participant, err: Error): void {
    this.dropped.add(s.id);
    this.d.drop(s, this.round, err);
  }

  recordStep(s: Participant, step: number, loss: number, tokens: number): void {
    this.losses.push(loss);
    this.tokens += tokens;
    this.d.onMetric?.({ type: 'step', round: this.round, step, client: s.id, loss, tokens, time: Date.now() });
  }

  async receiveParameters(s: Participant): Promise<ClientUpdate> {
    const m = await s.inbox.next(['parameters'], this.cfg.federation.client_timeout_ms);
    this.d.onReceive?.(s.id, m);
    const p = m.parameters;
    if (p.round !== this.round) throw new ProtocolError(`parameters for round ${p.round} during round ${this.round}`);
    const params = decodeClientParameters(p.tensors, this.d.partSpec, s.context(this.round, 0), {
      deltaBase: this.d.deltaBase,
      maxRms: this.cfg.transport.limits.max_value_rms,
    });
    const claimed = Number(p.numExamples);
    if (!Number.isFinite(claimed) || claimed < 0)
      throw new ProtocolError(`parameters: invalid num_examples ${p.numExamples}`);
    // A client's weight is what the server saw it train on this round (rows of h_A), never more
    // than it claims: a claimed count cannot buy a larger share of the average (under DP-FedAvg, 1).
    return { clientId: s.id, numExamples: meanWeight(this.cfg, Math.min(claimed, s.examplesThisRound)), params };
  }
}
