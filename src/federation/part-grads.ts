import { addMask, derive } from '../security/secagg/crypto.js';

// Per-step averaging of client-part gradients (the lockstep mode): how a step's gradients travel.
// Each client sends n_i x g_i (n_i its labelled tokens, g_i the gradient of its mean loss), flattened
// by parameter name; the server sums them and every client divides by sum n_i, so every client takes
// the gradient of the mean loss over the union batch, as one model trained on that batch would.
//
// With secure aggregation the values travel as fixed-point ring words under a one-time pad from the
// federation secret (which client kits hold and the server's never does): client i adds PRG(K, round,
// step, i), the server adds the words of every contributor, and each client removes the pads of the
// contributors the server names. What the server holds (each client's words and their sum) is
// uniformly random to it: neither a client's gradient nor the mean.

/** Plain and masked tensor names (protos/flglm.proto, PartGrad). */
export const PART_GRAD_TENSOR = 'part_grad';
export const MASKED_PART_GRAD_TENSOR = 'part_grad/masked';

/**
 * Fixed point: a value v = round(x 2^SCALE) as two ring words, lo = v mod 2^16 and hi = (v - lo) / 2^16,
 * each summed mod 2^32 on its own, so a sum of N clients is exact while |x| < 2^(47 - SCALE) / N:
 * 2^-28 (3.7e-9) resolution on n_i x g_i, up to 2^19 / N.
 */
const SCALE = 2 ** 28;
const LIMB = 2 ** 16;
const LIMIT = 2 ** 47;

/** The parameter names in the one order every side flattens them in. */
export const flatNames = (names: Iterable<string>): string[] => [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** k x grads, flattened in flatNames order. */
export function flattenScaled(grads: Map<string, Float32Array>, k: number): Float32Array {
  const names = flatNames(grads.keys());
  const out = new Float32Array(names.reduce((a, n) => a + grads.get(n)!.length, 0));
  let at = 0;
  for (const n of names) {
    const g = grads.get(n)!;
    for (let i = 0; i < g.length; i++) out[at + i] = k * g[i];
    at += g.length;
  }
  return out;
}

/** A flat vector back into `like`'s tensors (in place), each element divided by `total`. */
export function unflattenInto(flat: ArrayLike<number>, grads: Map<string, Float32Array>, total: number): void {
  let at = 0;
  for (const n of flatNames(grads.keys())) {
    const g = grads.get(n)!;
    for (let i = 0; i < g.length; i++) g[i] = flat[at + i] / total;
    at += g.length;
  }
}

/** The ring words of a flat vector, two per value (lo, hi). */
export function quantiseLimbs(x: Float32Array, clientCount: number): Uint32Array {
  const out = new Uint32Array(2 * x.length);
  const limit = LIMIT / Math.max(1, clientCount);
  for (let i = 0; i < x.length; i++) {
    const v = Math.round(x[i] * SCALE);
    if (!(Math.abs(v) < limit))
      throw new Error(
        `lockstep mode: a client-part gradient (${x[i]} x labelled tokens) does not fit the masked sum's fixed-point range (2^${Math.log2(limit / SCALE)}). Fix: lower optimizer.lr or turn on optimizer.grad_clip`,
      );
    const lo = ((v % LIMB) + LIMB) % LIMB;
    out[2 * i] = lo;
    out[2 * i + 1] = ((v - lo) / LIMB) >>> 0;
  }
  return out;
}

/** A (sum of) limbs back to values: lo unsigned, hi signed. */
export function dequantiseLimbs(words: Uint32Array): Float64Array {
  const out = new Float64Array(words.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = ((words[2 * i + 1] | 0) * LIMB + words[2 * i]) / SCALE;
  return out;
}

const padSeed = (secret: Uint8Array, round: number, step: number, clientId: string) =>
  derive(secret, `part grad pad round ${round} step ${step} client ${clientId}`);

/** words += PRG(K, round, step, client) (sign 1), or -= it (sign -1), in place. */
export function addPad(
  words: Uint32Array,
  secret: Uint8Array,
  at: { round: number; step: number },
  clientId: string,
  sign: 1 | -1,
): void {
  addMask(words, padSeed(secret, at.round, at.step, clientId), sign);
}
