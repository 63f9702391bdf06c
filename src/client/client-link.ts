import type { Inbox } from '../protocol/inbox.js';
import type { ServerMessage } from '../protocol/messages.js';
import { ACTIVATION_WIRE_DTYPES, decodeActivation, encodeActivation, type TensorContext } from '../protocol/tensors.js';
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
    return { clientId, keyId: this.keyId, round, step, channel: this.channel, activations };
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

  private async expect<K extends 'trunkOut' | 'headGrad'>(kind: K) {
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
