import type { DType, Shape, TensorData, TypedArrayOf } from '../graph/ir.js';
import { sizeOf, typedArrayFor } from '../graph/ir.js';

export type { TensorData };

export function tensor(dtype: DType, shape: Shape, data?: TypedArrayOf | ArrayLike<number>): TensorData {
  const n = sizeOf(shape);
  let arr: TypedArrayOf;
  if (data === undefined) arr = typedArrayFor(dtype, n);
  else if (ArrayBuffer.isView(data)) arr = data as TypedArrayOf;
  else if (dtype === 'int64') arr = BigInt64Array.from(Array.from(data as ArrayLike<number>, (x) => BigInt(x)));
  else {
    arr = typedArrayFor(dtype, n);
    (arr as Float32Array).set(data as ArrayLike<number>);
  }
  if (arr.length !== n) throw new Error(`tensor data has ${arr.length} elements, shape [${shape}] needs ${n}`);
  return { dtype, shape: [...shape], data: arr };
}

export function dtypeOfArray(a: TypedArrayOf): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint16Array) return 'float16';
  if (a instanceof Int8Array) return 'int8';
  return 'bool';
}

/** Bytes of a tensor without copying (never `Buffer.from(float32Array)`, which truncates). */
export function tensorBytes(t: TensorData): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Copy bytes (possibly unaligned, e.g. from gRPC) into a fresh typed array of `dtype`. */
export function tensorFromBytes(dtype: DType, shape: Shape, bytes: Uint8Array): TensorData {
  const out = typedArrayFor(dtype, sizeOf(shape));
  if (bytes.byteLength !== out.byteLength) {
    throw new Error(`tensor bytes: got ${bytes.byteLength} bytes, ${dtype}[${shape}] needs ${out.byteLength}`);
  }
  new Uint8Array(out.buffer).set(bytes);
  return { dtype, shape: [...shape], data: out };
}
