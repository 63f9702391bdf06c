import { addPad, dequantiseLimbs, flattenScaled, quantiseLimbs, unflattenInto } from '../federation/part-grads.js';
import type { TensorData } from '../runtime/tensor.js';
import { UserError } from '../util/errors.js';
import type { ClientLink } from './client-link.js';

/**
 * Lockstep mode's exchange, between the head backward and the optimizer: this client's part
 * gradient (times its labelled tokens) goes up, plain or under its pad from the federation secret,
 * and the server's sum comes back; `grads` becomes the mean over the union batch, the same on every
 * client (federation/part-grads.ts).
 */
export async function averagePartGrads(o: {
  link: ClientLink;
  round: number;
  step: number;
  grads: Map<string, Float32Array>;
  labelCount: number;
  /** This client's id as the server knows it (the contributors' list names it so). */
  selfId: string;
  clients: number;
  /** With secure aggregation: the federation secret the pads come from. */
  masked: boolean;
  secret: Buffer | null;
}): Promise<void> {
  const { link, round, step } = o;
  if (o.masked && !o.secret)
    throw new UserError(
      'lockstep mode with secure aggregation masks every step with the federation secret, and this client has none: set privacy.hide_aggregate: true and use client kits from flglm keygen',
    );
  const flat = flattenScaled(o.grads, o.labelCount);
  let up: TensorData = { dtype: 'float32', shape: [flat.length], data: flat };
  if (o.masked) {
    const words = quantiseLimbs(flat, o.clients);
    addPad(words, o.secret!, { round, step }, o.selfId, 1);
    up = { dtype: 'int32', shape: [words.length], data: new Int32Array(words.buffer) };
  }
  await link.sendPartGrad(round, step, up);
  const { sum, labelTotal, contributors } = await link.partGradSum(round, step, {
    masked: o.masked,
    length: flat.length,
  });
  if (!contributors.includes(o.selfId))
    throw new UserError(`malformed message from the server: part_grad_sum of step ${step} leaves this client out`);
  let values: ArrayLike<number> = sum.data as Float32Array;
  if (o.masked) {
    const words = Uint32Array.from(sum.data as Int32Array);
    for (const c of contributors) addPad(words, o.secret!, { round, step }, c, -1);
    values = dequantiseLimbs(words);
  }
  unflattenInto(values, o.grads, labelTotal);
}
