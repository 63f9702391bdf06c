import type { Inbox } from '../protocol/inbox.js';
import type { ServerMessage } from '../protocol/messages.js';
import {
  ACTIVATION_WIRE_DTYPES,
  decodeActivation,
  decodeTensor,
  encodeActivation,
  encodeTensor,
  type TensorContext,
} from '../protocol/tensors.js';
import { MASKED_PART_GRAD_TENSOR, PART_GRAD_TENSOR } from '../federation/part-grads.js';
import type { UplinkNoise } from '../privacy/example-dp.js';
import type { TensorData } from '../runtime/tensor.js';
import { PayloadChannel, unwrapRoundKey } from '../security/payload.js';
import { UserError } from '../util/errors.js';
import type { Uplink } from './uplink.js';

/** Failures after which trying again can help: the server restarted, dropped us, or is not up yet. */
export class RetryableError extends Error {}

export interface ClientLinkOptions {
  call: Uplink;
  inbox: Inbox<ServerMessage>;
  /** This client's id in tensor AAD (its certificate's, or the connection's). */
  clientId: string;
  activationDtype: keyof typeof ACTIVATION_WIRE_DTYPES;
  /** PEM of the private key that unwraps each round's payload key; null without payload encryption. */
  payloadKey: string | null;
  /** [batch, seq, hidden]: the shape of every step tensor. */
  shape: [number, number, number];
  timeoutMs: number;
  /** privacy.activation_noise or privacy.dp.activations: applied to h_A (and with `gradients`, to dL/dh_B) before they leave. */
  noise: UplinkNoise;
}

/**
 * The client's end of its step messages: the one place h_A and dL/dh_B are encoded (payload key,
 * wire dtype, activation noise) and sent, and h_B and dL/dh_A received and checked (round, step,
 * name, shape, finite). A drop by the server ends the attempt as a RetryableError.
 */
export class ClientLink {
  private keyId = '';
  private channel: PayloadChannel | null = null;

  constructor(private readonly o: ClientLinkOptions) {}

  get clientId(): string {
    return this.o.clientId;
  }

  /** A round's key arrived (RSA-OAEP unwrapped with this client's payload key): tensors are sealed with it from now on. */
  roundKey(k: { keyId: string; wrappedKey: Buffer }): void {
    this.keyId = k.keyId;
    this.channel =
      k.wrappedKey.length && this.o.payloadKey
        ? new PayloadChannel(unwrapRoundKey(k.wrappedKey, this.o.payloadKey), 'up')
        : null;
  }

  context(round: number, step: number): TensorContext {
    const { clientId, activationDtype } = this.o;
    const activations = ACTIVATION_WIRE_DTYPES[activationDtype];
    const sealed = this.o.payloadKey !== null;
    return { clientId, keyId: this.keyId, round, step, channel: this.channel, sealed, activations };
  }

  sendActivations(round: number, step: number, hA: TensorData, evaluate: boolean): void {
    const tensor = encodeActivation('h_A', this.o.noise.apply(hA), this.context(round, step));
    this.o.call.write({ activations: { round, step, tensor, eval: evaluate } });
  }

  async trunkOut(round: number, step: number): Promise<TensorData> {
    const m = await this.expect('trunkOut');
    return this.check('trunk_out', m.trunkOut, round, step, 'h_B');
  }

  sendTailGrad(round: number, step: number, grad: { dhB: TensorData; loss: number; labelCount: number }): void {
    const dhB = this.o.noise.gradients ? this.o.noise.apply(grad.dhB, true) : grad.dhB;
    const tensor = encodeActivation('grad_h_B', dhB, this.context(round, step));
    this.o.call.write({ tailGrad: { round, step, tensor, loss: grad.loss, labelCount: grad.labelCount } });
  }

  /** dL/dh_A and, with joint clipping, the trunk's gradient norm (null: this client clips its own). */
  async headGrad(round: number, step: number): Promise<{ dhA: TensorData; trunkNorm: number | null }> {
    const m = (await this.expect('headGrad')).headGrad;
    const dhA = this.check('head_grad', m, round, step, 'grad_h_A');
    return { dhA, trunkNorm: m.jointClip ? Number(m.gradNorm) || 0 : null };
  }

  /**
   * This client's gradient norm for joint clipping, sent before its update and next head forward
   * block this thread: the trunk's update waits for it (left queued, it arrived 20-30 ms later with
   * the next h_A; trace, 2026-12-02).
   */
  async sendStepDone(round: number, step: number, gradNorm: number): Promise<void> {
    this.o.call.write({ stepDone: { round, step, gradNorm } });
    await this.o.call.sent();
  }

  /** Lockstep mode: this step's flattened n_i x part gradient (float32, or masked int32 ring words). */
  async sendPartGrad(round: number, step: number, t: TensorData): Promise<void> {
    const name = t.dtype === 'int32' ? MASKED_PART_GRAD_TENSOR : PART_GRAD_TENSOR;
    this.o.call.write({ partGrad: { round, step, tensor: encodeTensor(name, t, this.context(round, step)) } });
    await this.o.call.sent();
  }

  /** Lockstep mode: the server's sum of the step's part gradients, checked against this client's parts. */
  async partGradSum(
    round: number,
    step: number,
    expect: { masked: boolean; length: number },
  ): Promise<{ sum: TensorData; labelTotal: number; contributors: string[] }> {
    const m = (await this.expect('partGradSum')).partGradSum;
    if (m.round !== round || m.step !== step)
      throw new UserError(
        `malformed message from the server: part_grad_sum for round ${m.round} step ${m.step}, expected round ${round} step ${step}`,
      );
    if (!(m.labelTotal > 0))
      throw new UserError('malformed message from the server: part_grad_sum with no labelled tokens');
    const [name, dtype, n] = expect.masked
      ? [MASKED_PART_GRAD_TENSOR, 'int32' as const, 2 * expect.length]
      : [PART_GRAD_TENSOR, 'float32' as const, expect.length];
    const sum = decodeTensor(m.tensor, { name, dtype, shape: [n], finite: true }, this.context(round, step));
    return { sum, labelTotal: m.labelTotal, contributors: m.contributors };
  }

  private async expect<K extends 'trunkOut' | 'headGrad' | 'partGradSum'>(kind: K) {
    const m = await this.o.inbox.next([kind, 'error'], this.o.timeoutMs);
    if (m.kind === 'error') throw new RetryableError(`dropped by the server: ${m.error.message}`);
    return m as Exclude<typeof m, { kind: 'error' }>;
  }

  private check(
    kind: string,
    body: { round: number; step: number; tensor?: Parameters<typeof decodeActivation>[0] | null },
    round: number,
    step: number,
    name: string,
  ): TensorData {
    if (!body.tensor) throw new UserError(`malformed message from the server: ${kind} without a tensor`);
    if (body.round !== round || body.step !== step)
      throw new UserError(
        `malformed message from the server: ${kind} for round ${body.round} step ${body.step}, expected round ${round} step ${step}`,
      );
    return decodeActivation(body.tensor, { name, shape: this.o.shape }, this.context(round, step));
  }
}
