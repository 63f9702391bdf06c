import { encodeHalfBits, type TensorContext, type WireTensor } from '../protocol/tensors.js';
import { floatsToHalves, halvesToFloats } from '../util/half.js';
import type { Params } from './strategies/strategy.js';

/**
 * `federation.update_encoding: float16-delta`: client parameters travel as float16 differences
 * from the parts the round started from, both ways, at half the bytes of float32. Absolute values
 * would not survive float16 (a weight of 0.02 has a float16 step of 1.5e-5, the size of an update);
 * a round's change does. Both sides rebuild the parts as base + widened delta in float32 the same
 * way, so the server's global parts and every client's stay bit-identical (the server keeps the
 * rebuilt parts, not its exact average). Entries other than parameters (control variates,
 * optimizer moments) and full re-syncs of a (re)joining client travel as float32.
 */
export function isDeltaEncoded(encoding: string): boolean {
  return encoding === 'float16-delta';
}

/** next - base, rounded to float16 bits, per parameter of `base`. */
export function quantizeDelta(base: Params, next: Params): Map<string, Uint16Array> {
  const out = new Map<string, Uint16Array>();
  for (const [name, b] of base) {
    const n = next.get(name);
    if (!n) continue;
    const d = new Float32Array(b.length);
    for (let i = 0; i < d.length; i++) d[i] = n[i] - b[i];
    out.set(name, floatsToHalves(d));
  }
  return out;
}

/** base + widened delta, in float32 (the one rebuild both sides do). */
export function applyDelta(
  base: Float32Array,
  delta: Float32Array,
  out: Float32Array = new Float32Array(base.length),
): Float32Array {
  for (let i = 0; i < base.length; i++) out[i] = base[i] + delta[i];
  return out;
}

/** The server's view after a delta broadcast: every parameter rebuilt from its float16 delta, other entries as they are. */
export function rebuiltParams(base: Params, next: Params, deltas: Map<string, Uint16Array>): Params {
  const out: Params = new Map(next);
  for (const [name, bits] of deltas) out.set(name, applyDelta(base.get(name)!, halvesToFloats(bits)));
  return out;
}

/** A parameter set for the wire: float16 deltas where there are some, float32 for the rest. */
export function encodeUpdate(
  params: Iterable<[string, Float32Array]>,
  deltas: Map<string, Uint16Array> | null,
  ctx: TensorContext,
  encodeFloat: (name: string, data: Float32Array) => WireTensor,
): WireTensor[] {
  return [...params].map(([name, data]) => {
    const bits = deltas?.get(name);
    return bits ? encodeHalfBits(name, bits, [data.length], ctx) : encodeFloat(name, data);
  });
}
