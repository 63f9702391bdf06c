import { addHideMask, dequantise, quantise } from '../security/secagg/protocol.js';
import type { ClientPartSpec, Params } from './strategies/strategy.js';

// How client parts travel under secure aggregation (privacy.secure_aggregation): flattened by name
// into one vector of fixed-point ring words (security/secagg/protocol.ts), the same on every side.

/** The masked ring tensor a client uploads (int32 words), and the one a hidden aggregate travels as. */
export const MASKED_TENSOR = 'secagg/masked';
export const HIDDEN_SUM_TENSOR = 'secagg/sum';

/** Client parts in the one order every side flattens them in (by name). */
export function flatOrder(spec: ClientPartSpec): [string, number][] {
  return [...spec].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** weight x parameters as one ring vector, in flatOrder. */
export function flattenWeighted(params: Params, weight: number, scaleBits: number): Uint32Array {
  const order = flatOrder(new Map([...params].map(([n, d]) => [n, d.length])));
  const out = new Uint32Array(order.reduce((a, [, n]) => a + n, 0));
  let at = 0;
  for (const [name, n] of order) {
    quantise(params.get(name)!, weight, scaleBits, out, at);
    at += n;
  }
  return out;
}

/** A ring sum back into the parts' mean (divided by the total weight), in flatOrder. */
export function unflattenMean(sum: Uint32Array, spec: ClientPartSpec, total: number, scaleBits: number): Params {
  const out: Params = new Map();
  let at = 0;
  for (const [name, n] of flatOrder(spec)) {
    out.set(name, dequantise(sum, total, scaleBits, at, n));
    at += n;
  }
  return out;
}

/** A hidden aggregate opened with the federation secret: sum - total x PRG(K, round). */
export function openHidden(sum: Uint32Array, secret: Uint8Array, round: number, total: number): Uint32Array {
  const open = Uint32Array.from(sum);
  addHideMask(open, secret, round, (2 ** 32 - total) >>> 0);
  return open;
}
