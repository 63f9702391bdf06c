import type { DType } from '../graph/ir.js';
import { tensorBytes, tensorFromBytes, type TensorData } from '../runtime/tensor.js';
import { PayloadChannel, type TensorHeader } from '../security/payload.js';

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

const DTYPES: DType[] = ['float32', 'float64', 'int64', 'int32', 'bool'];

export interface TensorContext {
  clientId: string;
  sessionId: string;
  round: number;
  step: number;
  channel: PayloadChannel | null;
}

function header(ctx: TensorContext, name: string, dtype: string, shape: number[]): TensorHeader {
  return { clientId: ctx.clientId, sessionId: ctx.sessionId, round: ctx.round, step: ctx.step, name, dtype, shape };
}

export function encodeTensor(name: string, t: TensorData, ctx: TensorContext): WireTensor {
  const bytes = tensorBytes(t);
  const shape = [...t.shape];
  if (!ctx.channel) return { name, dtype: t.dtype, shape, data: bytes, counter: 0, tag: new Uint8Array(0), encrypted: false };
  const sealed = ctx.channel.seal(header(ctx, name, t.dtype, shape), bytes);
  return { name, dtype: t.dtype, shape, data: sealed.ciphertext, counter: sealed.counter.toString(), tag: sealed.tag, encrypted: true };
}

/**
 * Check a received tensor against what the protocol expects at this point (name, dtype, shape)
 * and open it; any mismatch is a ProtocolError and nothing is applied.
 */
export function decodeTensor(w: WireTensor | null | undefined, expect: { name: string; dtype?: DType; shape?: readonly number[] }, ctx: TensorContext, maxBytes = 1 << 30): TensorData {
  if (!w) throw new ProtocolError(`missing tensor ${expect.name}`);
  if (w.name !== expect.name) throw new ProtocolError(`expected tensor ${expect.name}, got ${w.name}`);
  if (!DTYPES.includes(w.dtype as DType)) throw new ProtocolError(`tensor ${w.name}: unknown dtype ${w.dtype}`);
  if (expect.dtype && w.dtype !== expect.dtype) throw new ProtocolError(`tensor ${w.name}: dtype ${w.dtype}, expected ${expect.dtype}`);
  const shape = w.shape.map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new ProtocolError(`tensor ${w.name}: invalid shape [${shape}]`);
  if (expect.shape && (shape.length !== expect.shape.length || shape.some((d, i) => d !== expect.shape![i]))) {
    throw new ProtocolError(`tensor ${w.name}: shape [${shape}], expected [${expect.shape}]`);
  }
  if (w.data.byteLength > maxBytes) throw new ProtocolError(`tensor ${w.name}: ${w.data.byteLength} bytes is over the ${maxBytes}-byte limit`);
  if (ctx.channel && !w.encrypted) throw new ProtocolError(`tensor ${w.name} arrived unencrypted but payload encryption is on`);
  const bytes = ctx.channel
    ? ctx.channel.open(header(ctx, w.name, w.dtype, shape), { counter: BigInt(w.counter), ciphertext: Buffer.from(w.data), tag: Buffer.from(w.tag) })
    : w.data;
  try {
    return tensorFromBytes(w.dtype as DType, shape, bytes);
  } catch (e) {
    throw new ProtocolError(`tensor ${w.name}: ${(e as Error).message}`);
  }
}
