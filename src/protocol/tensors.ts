import type { DType } from '../graph/ir.js';
import { tensorBytes, tensorFromBytes, type TensorData } from '../runtime/tensor.js';
import { PayloadChannel, type TensorHeader } from '../security/payload.js';
import { bf16sToFloats, floatsToBf16s, floatsToHalves, halvesToFloats } from '../util/half.js';

/** The wire form of a tensor (protos/flglm.proto `Tensor`). */
export interface WireTensor {
  name: string;
  dtype: string;
  shape: (string | number)[];
  data: Uint8Array;
  counter: string | number;
  tag: Uint8Array;
  encrypted: boolean;
}

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Wire dtypes: the graph's, plus float16 and bfloat16 (float32 values sent at half the bytes, widened on receipt). */
export type WireDType = DType | 'float16' | 'bfloat16';
const DTYPES: WireDType[] = ['float32', 'float64', 'int64', 'int32', 'bool', 'float16', 'bfloat16', 'int8', 'uint8'];

export interface TensorContext {
  clientId: string;
  keyId: string;
  round: number;
  step: number;
  channel: PayloadChannel | null;
  /**
   * Payload encryption is on for this peer: every tensor must arrive sealed, also before a key is
   * there to open it (a tensor that comes unsealed, or ahead of its key, is refused).
   */
  sealed?: boolean;
  /** How activations and their gradients travel (`transport.activation_dtype`; default float32). */
  activations?: 'float32' | 'float16' | 'bfloat16';
}

function header(ctx: TensorContext, name: string, dtype: string, shape: number[]): TensorHeader {
  return { clientId: ctx.clientId, keyId: ctx.keyId, round: ctx.round, step: ctx.step, name, dtype, shape };
}

export function encodeTensor(name: string, t: TensorData, ctx: TensorContext): WireTensor {
  const bytes = tensorBytes(t);
  const shape = [...t.shape];
  if (!ctx.channel)
    return { name, dtype: t.dtype, shape, data: bytes, counter: 0, tag: new Uint8Array(0), encrypted: false };
  const sealed = ctx.channel.seal(header(ctx, name, t.dtype, shape), bytes);
  return {
    name,
    dtype: t.dtype,
    shape,
    data: sealed.ciphertext,
    counter: sealed.counter.toString(),
    tag: sealed.tag,
    encrypted: true,
  };
}

/**
 * Values already rounded to float16 (or bfloat16) bits, as a wire tensor (convert once, seal per
 * receiver); float16 magnitudes over 65504 are infinite and refused on receipt.
 */
export function encodeHalfBits(
  name: string,
  halves: Uint16Array,
  shape: readonly number[],
  ctx: TensorContext,
  dtype: 'float16' | 'bfloat16' = 'float16',
): WireTensor {
  const bytes = new Uint8Array(halves.buffer, halves.byteOffset, halves.byteLength);
  if (!ctx.channel)
    return { name, dtype, shape: [...shape], data: bytes, counter: 0, tag: new Uint8Array(0), encrypted: false };
  const sealed = ctx.channel.seal(header(ctx, name, dtype, [...shape]), bytes);
  return {
    name,
    dtype,
    shape: [...shape],
    data: sealed.ciphertext,
    counter: sealed.counter.toString(),
    tag: sealed.tag,
    encrypted: true,
  };
}

/** `transport.activation_dtype` -> the wire dtype. */
export const ACTIVATION_WIRE_DTYPES = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' } as const;

/** An activation or activation gradient (h_A, h_B and their gradients) in the context's activation dtype. */
export function encodeActivation(name: string, t: TensorData, ctx: TensorContext): WireTensor {
  const d = ctx.activations ?? 'float32';
  if (d === 'float32') return encodeTensor(name, t, ctx);
  const data = t.data as Float32Array;
  return encodeHalfBits(name, d === 'float16' ? floatsToHalves(data) : floatsToBf16s(data), t.shape, ctx, d);
}

/** The receiving side of encodeActivation: checked like any tensor, widened to float32, always finite. */
export function decodeActivation(
  w: WireTensor | null | undefined,
  expect: { name: string; shape: readonly number[]; maxRms?: number },
  ctx: TensorContext,
  maxBytes?: number,
): TensorData {
  return decodeTensor(w, { ...expect, dtype: ctx.activations ?? 'float32', finite: true }, ctx, maxBytes);
}

function counterOf(w: WireTensor): bigint {
  try {
    return BigInt(w.counter);
  } catch {
    throw new ProtocolError(`tensor ${w.name}: invalid counter ${String(w.counter).slice(0, 32)}`);
  }
}

const BYTES_PER_ELEMENT: Record<WireDType, number> = {
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  bool: 1,
  float16: 2,
  bfloat16: 2,
  int8: 1,
  uint8: 1,
};

export interface ExpectedTensor {
  name: string;
  /** float16, bfloat16: the tensor comes back widened to float32. */
  dtype?: WireDType;
  shape?: readonly number[];
  /** Refuse NaN and Inf (everything a peer sends that will be trained on or averaged). */
  finite?: boolean;
  /**
   * With `finite`: refuse a tensor whose root mean square is over this (`transport.limits.max_value_rms`).
   * Finite is not enough: 1e30 squares to Inf in the first norm and turns the trunk to NaN.
   */
  maxRms?: number;
}

/**
 * Check a received tensor against what the protocol expects at this point (name, dtype, shape,
 * byte size, finiteness) and open it; any mismatch is a ProtocolError and nothing is applied.
 * Sizes are checked against the declared shape before anything is decrypted or allocated.
 */
export function decodeTensor(
  w: WireTensor | null | undefined,
  expect: ExpectedTensor,
  ctx: TensorContext,
  maxBytes = 1 << 30,
): TensorData {
  if (!w) throw new ProtocolError(`missing tensor ${expect.name}`);
  if (w.name !== expect.name) throw new ProtocolError(`expected tensor ${expect.name}, got ${w.name}`);
  if (!DTYPES.includes(w.dtype as WireDType)) throw new ProtocolError(`tensor ${w.name}: unknown dtype ${w.dtype}`);
  if (expect.dtype && w.dtype !== expect.dtype)
    throw new ProtocolError(`tensor ${w.name}: dtype ${w.dtype}, expected ${expect.dtype}`);
  const shape = w.shape.map(Number);
  if (shape.length > 8 || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new ProtocolError(`tensor ${w.name}: invalid shape [${shape}]`);
  if (expect.shape && (shape.length !== expect.shape.length || shape.some((d, i) => d !== expect.shape![i]))) {
    throw new ProtocolError(`tensor ${w.name}: shape [${shape}], expected [${expect.shape}]`);
  }
  let need = BYTES_PER_ELEMENT[w.dtype as WireDType];
  for (const d of shape) need *= d;
  if (need > maxBytes) throw new ProtocolError(`tensor ${w.name}: shape [${shape}] is over the ${maxBytes}-byte limit`);
  if (w.data.byteLength !== need)
    throw new ProtocolError(`tensor ${w.name}: got ${w.data.byteLength} bytes, ${w.dtype}[${shape}] needs ${need}`);
  if ((ctx.channel || ctx.sealed) && !w.encrypted)
    throw new ProtocolError(`tensor ${w.name} arrived unencrypted but payload encryption is on`);
  if (!ctx.channel && w.encrypted)
    throw new ProtocolError(`tensor ${w.name} arrived sealed before its payload key (no round or join key yet)`);
  const bytes = ctx.channel
    ? ctx.channel.open(header(ctx, w.name, w.dtype, shape), {
        counter: counterOf(w),
        ciphertext: Buffer.from(w.data),
        tag: Buffer.from(w.tag),
      })
    : w.data;
  // Half-width values are copied before viewing (gRPC buffers are often unaligned), then widened.
  const halves = () => new Uint16Array(Uint8Array.from(bytes).buffer);
  const t: TensorData =
    w.dtype === 'float16'
      ? { dtype: 'float32', shape, data: halvesToFloats(halves()) }
      : w.dtype === 'bfloat16'
        ? { dtype: 'float32', shape, data: bf16sToFloats(halves()) }
        : tensorFromBytes(w.dtype as DType, shape, bytes);
  if (expect.finite && (t.dtype === 'float32' || t.dtype === 'float64')) {
    const data = t.data as Float32Array | Float64Array;
    let squares = 0;
    for (let i = 0; i < data.length; i++) {
      // x - x is 0 for finite x and NaN for NaN and +-Inf: one comparison per element.
      if (data[i] - data[i] !== 0)
        throw new ProtocolError(`tensor ${w.name}: non-finite value ${data[i]} at element ${i}`);
      squares += data[i] * data[i];
    }
    const rms = Math.sqrt(squares / Math.max(1, data.length));
    if (expect.maxRms !== undefined && !(rms <= expect.maxRms))
      throw new ProtocolError(
        `tensor ${w.name}: root mean square ${rms.toPrecision(3)} is over the limit ${expect.maxRms} (transport.limits.max_value_rms)`,
      );
  }
  return t;
}
