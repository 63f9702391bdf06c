import { randomUUID } from 'node:crypto';
import type { ExperimentConfig } from '../config/schema.js';
import type { ClientUpdate, Params, RoundPlan, Strategy } from '../federation/strategies/strategy.js';
import type { ModelConfig } from '../model/config.js';
import { decodeActivation, encodeActivation, encodeTensor, ProtocolError } from '../protocol/tensors.js';
import { newRoundKey, PayloadChannel, wrapRoundKey } from '../security/payload.js';
import type { BusyLog } from './busy-log.js';
import type { ClientLimits } from './client-limits.js';
import type { ClientPartSpec } from '../federation/strategies/strategy.js';
import type { Participant } from './participant.js';
import type { ClientMessage } from '../protocol/messages.js';
import type { StepTensor__Output as StepTensor } from '../protocol/generated/flglm/v1/StepTensor.js';
import { decodeClientParameters } from './client-update.js';
import { HIDDEN_SUM_TENSOR, secureCollect, type HiddenAggregate, type SecurePhaseSeconds } from './secure-collect.js';
import { encodeUpdate } from '../federation/update-encoding.js';
import type { RoundContext, StepMessage } from './modes/mode.js';
import type { Replica } from './replica.js';
import type { EvalMetrics, EvalResult } from './records.js';
import type { Capture } from '../privacy/capture.js';

/** What a round needs from the server that runs it. */
export interface RoundDeps {
  cfg: ExperimentConfig;
  model: ModelConfig;
  limits: ClientLimits;
  partSpec: ClientPartSpec;
  strategy: Strategy;
  startParams: Params | null;
  /** update_encoding float16-delta: the parameters this round's updates are differences from (else null). */
  deltaBase: Params | null;
  replicas: readonly Replica[];
  busy: BusyLog;
  /** The learning rate of the trunk step about to run on `replica` (advances its schedule). */
  nextTrunkLr(replica: number): number;
  drop(s: Participant, round: number, err: Error): void;
  onReceive?: (clientId: string, message: ClientMessage) => void;
  onMetric?: (record: Record<string, unknown>) => void;
  /** `--capture`: keeps the last received h_A of each client (measuring the inversion attack). */
  capture?: Capture | null;
}

/**
 * One round as the modes see it (`RoundContext`): opening the round for a client, serving its
 * steps against a replica, checking every message against the plan, collecting its parameters.
 * Also serves evaluation passes (`evaluate`), where clients only run forward passes.
 */
export class Round implements RoundContext {
  readonly losses: number[] = [];
  tokens = 0;
  /** Clients dropped during this round. */
  readonly dropped = new Set<string>();

  readonly secure?: (survivors: Participant[]) => Promise<ClientUpdate[]>;
  /** Seconds the secure-aggregation exchanges took, per exchange (a round-end phase of the round record). */
  readonly securePhases: SecurePhaseSeconds = {};
  /** The strategy's configuration of this round (configure_fit). */
  readonly plan: RoundPlan;

  constructor(
    readonly round: number,
    readonly participants: readonly Participant[],
    private readonly d: RoundDeps,
    readonly evaluate = false,
  ) {
    if (d.cfg.privacy.secure_aggregation.enabled)
      this.secure = (survivors) => secureCollect(this, survivors, d.partSpec, this.securePhases);
    const clients = participants.map((s) => ({ id: s.id, weight: s.numExamples }));
    this.plan = evaluate ? { config: () => ({}) } : d.strategy.configureRound(round, clients, d.startParams);
  }

  get cfg(): ExperimentConfig {
    return this.d.cfg;
  }
  get replicas(): readonly Replica[] {
    return this.d.replicas;
  }
  get startParams(): Params | null {
    return this.d.startParams;
  }

  openRound(s: Participant, startFrom?: Params, steps = this.cfg.federation.local_steps): void {
    s.keyId = randomUUID();
    s.examplesThisRound = 0;
    if (s.payloadPublicKey) {
      const key = newRoundKey();
      s.channel = new PayloadChannel(key, 'down');
      s.send({ roundKey: { round: this.round, keyId: s.keyId, wrappedKey: wrapRoundKey(key, s.payloadPublicKey) } });
    } else {
      s.channel = null;
      s.send({ roundKey: { round: this.round, keyId: s.keyId, wrappedKey: Buffer.alloc(0) } });
    }
    if (startFrom) sendParams(s, this.round, startFrom);
    const config = this.evaluate
      ? {}
      : {
          ...this.plan.config(s.id),
          ...(this.cfg.federation.strategy.client_optimizer === 'reset' ? { reset_optimizer: true } : {}),
        };
    s.send({
      roundStart: {
        round: this.round,
        localSteps: this.evaluate ? 0 : steps,
        configJson: JSON.stringify(config),
        evaluate: this.evaluate,
      },
    });
  }

  drop(s: Participant, err: Error): void {
    this.dropped.add(s.id);
    this.d.drop(s, this.round, err);
  }

  timed<T>(replica: number, work: Promise<T>): Promise<T> {
    return this.d.busy.time(replica, work);
  }

  nextTrunkLr(replica: number): number {
    return this.d.nextTrunkLr(replica);
  }

  recordStep(s: Participant, step: number, loss: number, tokens: number): void {
    this.losses.push(loss);
    this.tokens += tokens;
    this.d.onMetric?.({ type: 'step', round: this.round, step, client: s.id, loss, tokens, time: Date.now() });
  }

  /** Expect a tensor message of one kind for this round (and `step`, unless null), decoded and checked. */
  async expectStep(
    s: Participant,
    kind: 'activations' | 'tailGrad',
    step: number | null,
    name: string,
  ): Promise<StepMessage> {
    const m = await s.inbox.next([kind], this.cfg.federation.client_timeout_ms);
    this.d.onReceive?.(s.id, m);
    return this.checkStep(s, kind, kind === 'activations' ? m.activations : m.tailGrad, step, name);
  }

  private checkStep(
    s: Participant,
    kind: 'activations' | 'tailGrad',
    st: StepTensor | null | undefined,
    step: number | null,
    name: string,
  ): StepMessage {
    if (!st?.tensor) throw new ProtocolError(`${kind} without a tensor`);
    if (st.round !== this.round) throw new ProtocolError(`${kind} for round ${st.round} during round ${this.round}`);
    if (step !== null && st.step !== step)
      throw new ProtocolError(`${kind} for step ${st.step}, expected step ${step}`);
    if (st.eval !== this.evaluate)
      throw new ProtocolError(
        this.evaluate ? `training ${kind} during an evaluation pass` : `evaluation ${kind} during a training round`,
      );
    const { batch_size: B, seq_len: S } = this.cfg.data;
    // Non-finite activations or gradients would poison the shared trunk for every client.
    const tensor = decodeActivation(
      st.tensor,
      { name, shape: [B, S, this.d.model.hidden_size] },
      s.context(this.round, st.step),
      this.d.limits.stepTensorBytes,
    );
    if (kind === 'tailGrad') {
      if (!Number.isFinite(st.loss)) throw new ProtocolError(`tail_grad: non-finite loss ${st.loss}`);
      if (!(st.labelCount >= 0 && st.labelCount <= B * S))
        throw new ProtocolError(`tail_grad: label_count ${st.labelCount} is outside 0..${B * S}`);
    } else if (!st.eval) s.examplesThisRound += tensor.shape[0];
    return { step: st.step, tensor, loss: st.loss, eval: st.eval, labelCount: st.labelCount };
  }

  /** The client's gradient norm for its client parts after `step` (for joint clipping). */
  private async expectStepDone(s: Participant, step: number): Promise<number> {
    const m = await s.inbox.next(['stepDone'], this.cfg.federation.client_timeout_ms);
    this.d.onReceive?.(s.id, m);
    const d = m.stepDone;
    if (d.round !== this.round || d.step !== step)
      throw new ProtocolError(
        `step_done for round ${d.round} step ${d.step}, expected round ${this.round} step ${step}`,
      );
    if (!(Number.isFinite(d.gradNorm) && d.gradNorm >= 0))
      throw new ProtocolError(`step_done: invalid gradient norm ${d.gradNorm}`);
    return d.gradNorm;
  }

  async serveSteps(s: Participant, index: number, steps = this.cfg.federation.local_steps): Promise<void> {
    const replica = this.replicas[index];
    const { round } = this;
    for (let step = 1; step <= steps; step++) {
      const key = `${s.id}:${round}:${step}`;
      const a = await this.expectStep(s, 'activations', step, 'h_A');
      this.d.capture?.activations(s.id, round, step, a.tensor);
      const hB = await this.timed(index, replica.forward(key, a.tensor, true));
      s.send({ trunkOut: { round, step, tensor: encodeActivation('h_B', hB, s.context(round, step)), eval: false } });
      let g;
      try {
        g = await this.expectStep(s, 'tailGrad', step, 'grad_h_B');
      } catch (e) {
        await replica.drop(key);
        throw e;
      }
      const { dhA, gradNorm } = await this.timed(index, replica.backward(key, g.tensor));
      // Joint clipping: the client and the trunk are one model, so they clip by one global norm,
      // sqrt(|g_trunk|^2 + |g_client|^2), as centralized training does. The client learns the
      // trunk's norm here and sends its own back before its next step.
      s.send({
        headGrad: {
          round,
          step,
          tensor: encodeActivation('grad_h_A', dhA, s.context(round, step)),
          gradNorm,
          jointClip: true,
        },
      });
      let clientNorm: number;
      try {
        clientNorm = await this.expectStepDone(s, step);
      } catch (e) {
        await replica.drop(key);
        throw e;
      }
      await this.timed(index, replica.apply(key, this.nextTrunkLr(index), Math.hypot(gradNorm, clientNorm)));
      this.recordStep(s, step, g.loss, a.tensor.shape[0] * a.tensor.shape[1]);
    }
  }

  /** An evaluation pass: forward requests (activations with `eval`) until the client sends its eval_result. */
  async serveEvaluation(s: Participant, index: number): Promise<unknown> {
    const replica = this.replicas[index];
    for (;;) {
      const m = await s.inbox.next(['activations', 'evalResult'], this.cfg.federation.client_timeout_ms);
      this.d.onReceive?.(s.id, m);
      if (m.kind === 'evalResult') {
        if (m.evalResult.round !== this.round)
          throw new ProtocolError(`eval_result for round ${m.evalResult.round} during round ${this.round}`);
        try {
          return JSON.parse(m.evalResult.metricsJson);
        } catch {
          throw new ProtocolError('eval_result: metrics_json is not JSON');
        }
      }
      const a = this.checkStep(s, 'activations', m.activations, null, 'h_A');
      const hB = await this.timed(index, replica.forward(`${s.id}:eval`, a.tensor, false));
      s.send({
        trunkOut: {
          round: this.round,
          step: a.step,
          tensor: encodeActivation('h_B', hB, s.context(this.round, a.step)),
          eval: true,
        },
      });
    }
  }

  /** Every participant evaluates on its held-out data through the trunk; a failure drops only that client. */
  async evaluateAll(): Promise<EvalResult[]> {
    const results = await Promise.all(
      this.participants.map(async (s, i): Promise<EvalResult | null> => {
        try {
          this.openRound(s);
          const metrics = (await this.serveEvaluation(s, i % this.replicas.length)) as { eval?: EvalMetrics } | null;
          return { clientId: s.id, eval: metrics?.eval };
        } catch (e) {
          this.drop(s, e as Error);
          return null;
        }
      }),
    );
    return results.filter((r): r is EvalResult => r !== null);
  }

  async receiveParameters(s: Participant): Promise<ClientUpdate> {
    const m = await s.inbox.next(['parameters'], this.cfg.federation.client_timeout_ms);
    this.d.onReceive?.(s.id, m);
    const p = m.parameters;
    if (p.round !== this.round) throw new ProtocolError(`parameters for round ${p.round} during round ${this.round}`);
    if (this.evaluate) throw new ProtocolError('parameters during an evaluation pass (expected eval_result)');
    const params = decodeClientParameters(p.tensors, this.d.partSpec, s.context(this.round, 0), this.d.deltaBase);
    const claimed = Number(p.numExamples);
    if (!Number.isFinite(claimed) || claimed < 0)
      throw new ProtocolError(`parameters: invalid num_examples ${p.numExamples}`);
    // A client's weight is what the server saw it train on this round (rows of h_A), never more
    // than it claims: a claimed count cannot buy a larger share of the average.
    return { clientId: s.id, numExamples: Math.min(claimed, s.examplesThisRound), params };
  }
}

/** A hidden aggregate to a client (privacy.hide_aggregate): the masked ring sum and its total weight, to open with the federation secret. */
export function sendHidden(s: Participant, h: HiddenAggregate): void {
  const ctx = s.context(h.round, 0);
  const words = new Int32Array(h.sum.buffer, h.sum.byteOffset, h.sum.length);
  s.send({
    averaged: {
      round: h.round,
      numExamples: h.total,
      tensors: [encodeTensor(HIDDEN_SUM_TENSOR, { dtype: 'int32', shape: [words.length], data: words }, ctx)],
    },
  });
}

/**
 * Client-part parameters to a client (the round's global parts, or the relay hand-off); with
 * `deltas`, those parameters travel as float16 changes from the round's base (update-encoding.ts).
 */
export function sendParams(
  s: Participant,
  round: number,
  params: Params,
  deltas: Map<string, Uint16Array> | null = null,
): void {
  const ctx = s.context(round, 0);
  s.send({
    averaged: {
      round,
      tensors: encodeUpdate(params, deltas, ctx, (name, data) =>
        encodeTensor(name, { dtype: 'float32', shape: [data.length], data }, ctx),
      ),
    },
  });
}
