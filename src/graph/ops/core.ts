import type { Attr, DType, Graph, Shape, TensorData, Value } from '../ir.js';

// What every op builder shares: attribute makers, axis and broadcast rules, constants.

export const int = (value: number): Attr => ({ type: 'int', value });
export const ints = (value: readonly number[]): Attr => ({ type: 'ints', value });
export const float = (value: number): Attr => ({ type: 'float', value });

export function fail(op: string, msg: string): never {
  throw new Error(`${op}: ${msg}`);
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function broadcastShapes(a: Shape, b: Shape, op = 'broadcast'): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) fail(op, `shapes [${a}] and [${b}] do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

// ---- constants -------------------------------------------------------------------------------

export function constant(g: Graph, tensor: TensorData, name = 'const'): Value {
  return g.initializer(g.uniqueName(name), tensor);
}

export function scalar(g: Graph, v: number, dtype: DType = 'float32'): Value {
  const data =
    dtype === 'float64'
      ? Float64Array.of(v)
      : dtype === 'int64'
        ? BigInt64Array.of(BigInt(v))
        : dtype === 'int32'
          ? Int32Array.of(v)
          : Float32Array.of(v);
  return constant(g, { dtype, shape: [], data }, 'scalar');
}

export function int64s(g: Graph, values: readonly number[]): Value {
  return constant(g, { dtype: 'int64', shape: [values.length], data: BigInt64Array.from(values.map(BigInt)) }, 'ints');
}

/** A scalar constant with the same dtype as `like`. */
export function scalarLike(like: Value, v: number): Value {
  return scalar(like.graph, v, like.dtype);
}

export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
};

/** Read back the integers of an int64 constant made by `int64s` (used by gradient rules). */
export function constInts(v: Value | null): number[] {
  const t = v ? v.graph.initializers.get(v) : undefined;
  if (!t || t.dtype !== 'int64') throw new Error(`expected an int64 constant, got ${v}`);
  return Array.from(t.data as BigInt64Array, Number);
}

export function attrInt(node: { attrs: Readonly<Record<string, Attr>> }, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a && (a.type === 'int' || a.type === 'float') ? a.value : fallback;
}
export function attrInts(node: { attrs: Readonly<Record<string, Attr>> }, name: string): number[] | undefined {
  const a = node.attrs[name];
  return a && a.type === 'ints' ? [...a.value] : undefined;
}
