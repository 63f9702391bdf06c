import type { TailGrad, StepLink } from './modes/mode.js';
import type { StepTensor__Output as StepTensor } from '../protocol/generated/flglm/v1/StepTensor.js';
import type { ClientMessage, KindOf } from '../protocol/messages.js';
import { decodeActivation, decodeTensor, encodeActivation, encodeTensor, ProtocolError } from '../protocol/tensors.js';
import { MASKED_PART_GRAD_TENSOR, PART_GRAD_TENSOR } from '../federation/part-grads.js';
import type { TensorData } from '../runtime/tensor.js';
import type { Capture } from '../privacy/capture.js';
import type { Participant } from './participant.js';

/** What a link needs from its round. */
export interface LinkSetup {
  round: number;
  /** An evaluation pass (forward requests only) rather than a training round. */
  evaluate: boolean;
  /** [batch, seq, hidden]: the shape of every step tensor. */
  shape: [number, number, number];
  /** The most sealed bytes one step tensor may take (client limits). */
  stepTensorBytes: number;
  /** transport.limits.max_value_rms: the largest RMS a step tensor may have. */
  maxRms: number;
  timeoutMs: number;
  onReceive?: (clientId: string, message: ClientMessage) => void;
  /** `--capture`: keeps the last received training h_A of each client (measuring the inversion attack). */
  capture?: Capture | null;
  /** Values in the client parts (the length of a flattened part gradient, lockstep mode). */
  partLength?: number;
}

type StepKind = 'activations' | 'tailGrad';
const PART_GRADS = { plain: [PART_GRAD_TENSOR, 'float32', 1], masked: [MASKED_PART_GRAD_TENSOR, 'int32', 2] } as const;

/**
 * The server's end of one client's step messages for one round or evaluation pass: it is the one
 * place step tensors are encoded, sent, received and checked (round, step, eval flag, name, shape,
 * size, finite; loss and label count), so modes say what happens in a step and never build a
 * message. A check that fails throws a ProtocolError, which drops only this client.
 */
export class ServerLink implements StepLink {
  constructor(
    private readonly s: Participant,
    private readonly o: LinkSetup,
  ) {}

  async activations(step: number): Promise<TensorData> {
    const { tensor } = await this.expect('activations', step, 'h_A');
    this.o.capture?.activations(this.s.id, this.o.round, step, tensor);
    return tensor;
  }

  sendTrunkOut(step: number, hB: TensorData): void {
    const { round, evaluate } = this.o;
    this.s.send({ trunkOut: { round, step, tensor: this.encode('h_B', hB, step), eval: evaluate } });
  }

  async tailGrad(step: number): Promise<TailGrad> {
    const { tensor, st } = await this.expect('tailGrad', step, 'grad_h_B');
    const [B, S] = this.o.shape;
    if (!Number.isFinite(st.loss)) throw new ProtocolError(`tail_grad: non-finite loss ${st.loss}`);
    if (!(st.labelCount >= 0 && st.labelCount <= B * S))
      throw new ProtocolError(`tail_grad: label_count ${st.labelCount} is outside 0..${B * S}`);
    return { tensor, loss: st.loss, labelCount: st.labelCount };
  }

  sendHeadGrad(step: number, dhA: TensorData, trunkNorm: number | null): void {
    const tensor = this.encode('grad_h_A', dhA, step);
    const { round } = this.o;
    this.s.send({
      headGrad:
        trunkNorm === null ? { round, step, tensor } : { round, step, tensor, gradNorm: trunkNorm, jointClip: true },
    });
  }

  async stepDone(step: number): Promise<number> {
    const d = (await this.next(['stepDone'])).stepDone!;
    const { round } = this.o;
    if (d.round !== round || d.step !== step)
      throw new ProtocolError(`step_done for round ${d.round} step ${d.step}, expected round ${round} step ${step}`);
    if (!(Number.isFinite(d.gradNorm) && d.gradNorm >= 0))
      throw new ProtocolError(`step_done: invalid gradient norm ${d.gradNorm}`);
    return d.gradNorm;
  }

  /** The client's flattened part gradient of `step` (lockstep mode): float32, or masked int32 ring words. */
  async partGrad(step: number, masked: boolean): Promise<TensorData> {
    const p = (await this.next(['partGrad'])).partGrad!;
    const { round } = this.o;
    if (p.round !== round || p.step !== step)
      throw new ProtocolError(`part_grad for round ${p.round} step ${p.step}, expected round ${round} step ${step}`);
    const [name, dtype, width] = PART_GRADS[masked ? 'masked' : 'plain'];
    const n = width * (this.o.partLength ?? 0);
    return decodeTensor(p.tensor, { name, dtype, shape: [n], finite: true }, this.s.context(round, step), 4 * n);
  }

  sendPartGradSum(step: number, sum: TensorData, labelTotal: number, contributors: string[]): void {
    const name = sum.dtype === 'int32' ? MASKED_PART_GRAD_TENSOR : PART_GRAD_TENSOR;
    const { round } = this.o;
    const tensor = encodeTensor(name, sum, this.s.context(round, step));
    this.s.send({ partGradSum: { round, step, tensor, labelTotal, contributors } });
  }

  /** An evaluation pass: the next forward request (h_A of any step), or the client's metrics once it is done. */
  async evaluation(): Promise<{ step: number; tensor: TensorData } | { metrics: unknown }> {
    const m = await this.next(['activations', 'evalResult']);
    if (m.kind === 'evalResult') {
      if (m.evalResult.round !== this.o.round)
        throw new ProtocolError(`eval_result for round ${m.evalResult.round} during round ${this.o.round}`);
      try {
        return { metrics: JSON.parse(m.evalResult.metricsJson) };
      } catch {
        throw new ProtocolError('eval_result: metrics_json is not JSON');
      }
    }
    const { tensor, st } = this.check('activations', m.activations, null, 'h_A');
    return { step: st.step, tensor };
  }

  private encode(name: string, t: TensorData, step: number) {
    return encodeActivation(name, t, this.s.context(this.o.round, step));
  }

  private async next<K extends KindOf<ClientMessage>>(kinds: K[]) {
    const m = await this.s.inbox.next(kinds, this.o.timeoutMs);
    this.o.onReceive?.(this.s.id, m);
    return m;
  }

  private async expect(kind: StepKind, step: number, name: string) {
    const m = await this.next([kind]);
    return this.check(kind, kind === 'activations' ? m.activations : m.tailGrad, step, name);
  }

  /** A step tensor of this round (and `step`, unless null), decoded and checked. */
  private check(kind: StepKind, st: StepTensor | null | undefined, step: number | null, name: string) {
    const { round, evaluate, shape } = this.o;
    if (!st?.tensor) throw new ProtocolError(`${kind} without a tensor`);
    if (st.round !== round) throw new ProtocolError(`${kind} for round ${st.round} during round ${round}`);
    if (step !== null && st.step !== step)
      throw new ProtocolError(`${kind} for step ${st.step}, expected step ${step}`);
    if (st.eval !== evaluate)
      throw new ProtocolError(
        evaluate ? `training ${kind} during an evaluation pass` : `evaluation ${kind} during a training round`,
      );
    // Non-finite or huge activations or gradients would poison the shared trunk for every client.
    const { maxRms } = this.o;
    const ctx = this.s.context(round, st.step);
    const tensor = decodeActivation(st.tensor, { name, shape, maxRms }, ctx, this.o.stepTensorBytes);
    if (kind === 'activations' && !evaluate) this.s.examplesThisRound += tensor.shape[0];
    return { tensor, st };
  }
}
