import { Graph, Value, type Attr, type DType, type Shape, type TensorData, sizeOf } from './ir.js';

/** Op builders: each infers its output shape statically and appends one ONNX node. */

const int = (value: number): Attr => ({ type: 'int', value });
const ints = (value: readonly number[]): Attr => ({ type: 'ints', value });
const float = (value: number): Attr => ({ type: 'float', value });

function fail(op: string, msg: string): never {
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

// ---- elementwise -----------------------------------------------------------------------------

function binary(op: string, a: Value, b: Value, outDtype?: DType): Value {
  if (a.dtype !== b.dtype) fail(op, `dtype mismatch ${a} vs ${b}`);
  return a.graph.addNode(op, [a, b], [{ dtype: outDtype ?? a.dtype, shape: broadcastShapes(a.shape, b.shape, op) }])[0];
}
function unary(op: string, x: Value, attrs: Record<string, Attr> = {}): Value {
  return x.graph.addNode(op, [x], [{ dtype: x.dtype, shape: x.shape }], attrs)[0];
}

export const add = (a: Value, b: Value) => binary('Add', a, b);
export const sub = (a: Value, b: Value) => binary('Sub', a, b);
export const mul = (a: Value, b: Value) => binary('Mul', a, b);
export const div = (a: Value, b: Value) => binary('Div', a, b);
export const pow = (a: Value, b: Value) => binary('Pow', a, b);
export const equal = (a: Value, b: Value) => binary('Equal', a, b, 'bool');
export const greater = (a: Value, b: Value) => binary('Greater', a, b, 'bool');
export const less = (a: Value, b: Value) => binary('Less', a, b, 'bool');
export const neg = (x: Value) => unary('Neg', x);
export const sqrt = (x: Value) => unary('Sqrt', x);
export const reciprocal = (x: Value) => unary('Reciprocal', x);
export const exp = (x: Value) => unary('Exp', x);
export const log = (x: Value) => unary('Log', x);
export const sigmoid = (x: Value) => unary('Sigmoid', x);
export const tanh = (x: Value) => unary('Tanh', x);
export const erf = (x: Value) => unary('Erf', x);
/** GELU, exact form x/2 (1 + erf(x / sqrt 2)) (GPT-NeoX, Phi and BERT-style MLPs). */
export const gelu = (x: Value) =>
  mul(mul(x, scalarLike(x, 0.5)), add(scalarLike(x, 1), erf(mul(x, scalarLike(x, Math.SQRT1_2)))));
export const identity = (x: Value) => unary('Identity', x);
export const not = (x: Value) => unary('Not', x);
export const softmax = (x: Value, axis = -1) => unary('Softmax', x, { axis: int(normAxis(axis, x.rank)) });

export function cast(x: Value, to: DType): Value {
  if (x.dtype === to) return x;
  return x.graph.addNode('Cast', [x], [{ dtype: to, shape: x.shape }], { to: int(ONNX_DTYPE[to]) })[0];
}

export function where(cond: Value, x: Value, y: Value): Value {
  if (cond.dtype !== 'bool') fail('Where', `condition must be bool, got ${cond}`);
  if (x.dtype !== y.dtype) fail('Where', `dtype mismatch ${x} vs ${y}`);
  const shape = broadcastShapes(broadcastShapes(cond.shape, x.shape, 'Where'), y.shape, 'Where');
  return x.graph.addNode('Where', [cond, x, y], [{ dtype: x.dtype, shape }])[0];
}

// ---- linear algebra --------------------------------------------------------------------------

export function matmul(a: Value, b: Value): Value {
  if (a.dtype !== b.dtype) fail('MatMul', `dtype mismatch ${a} vs ${b}`);
  if (a.rank < 2 || b.rank < 2) fail('MatMul', `needs rank >= 2, got ${a} and ${b}`);
  const [m, k] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  if (k !== k2) fail('MatMul', `inner dimensions differ: ${a} @ ${b}`);
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'MatMul');
  return a.graph.addNode('MatMul', [a, b], [{ dtype: a.dtype, shape: [...batch, m, n] }])[0];
}

export function gemm(
  a: Value,
  b: Value,
  c: Value | null,
  opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
): Value {
  if (a.rank !== 2 || b.rank !== 2) fail('Gemm', `needs 2-D operands, got ${a} and ${b}`);
  const [m, k] = opts.transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [k2, n] = opts.transB ? [b.shape[1], b.shape[0]] : b.shape;
  if (k !== k2) fail('Gemm', `inner dimensions differ: ${a} and ${b}`);
  if (c) broadcastShapes([m, n], c.shape, 'Gemm');
  return a.graph.addNode('Gemm', [a, b, c], [{ dtype: a.dtype, shape: [m, n] }], {
    transA: int(opts.transA ? 1 : 0),
    transB: int(opts.transB ? 1 : 0),
    alpha: float(opts.alpha ?? 1),
    beta: float(opts.beta ?? 1),
  })[0];
}

// ---- reductions ------------------------------------------------------------------------------

function reducedShape(shape: Shape, axes: number[], keepdims: boolean): number[] {
  return keepdims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

function reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceMax', x: Value, axes: number[], keepdims: boolean): Value {
  const ax = [...new Set(axes.map((a) => normAxis(a, x.rank)))].sort((p, q) => p - q);
  const shape = reducedShape(x.shape, ax, keepdims);
  // Opset 17: ReduceSum takes axes as an input; ReduceMean/ReduceMax take them as an attribute.
  if (op === 'ReduceSum')
    return x.graph.addNode(op, [x, int64s(x.graph, ax)], [{ dtype: x.dtype, shape }], {
      keepdims: int(keepdims ? 1 : 0),
    })[0];
  return x.graph.addNode(op, [x], [{ dtype: x.dtype, shape }], { axes: ints(ax), keepdims: int(keepdims ? 1 : 0) })[0];
}
export const reduceSum = (x: Value, axes: number[], keepdims = true) =>
  axes.length === 0 ? x : reduce('ReduceSum', x, axes, keepdims);
export const reduceMean = (x: Value, axes: number[], keepdims = true) => reduce('ReduceMean', x, axes, keepdims);
export const reduceMax = (x: Value, axes: number[], keepdims = true) => reduce('ReduceMax', x, axes, keepdims);

// ---- shape ops -------------------------------------------------------------------------------

export function reshape(x: Value, shape: readonly number[]): Value {
  const out = shape.map((d, i) => (d === 0 ? x.shape[i] : d));
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const inferred = out.map((d) => (d === -1 ? x.size / known : d));
  if (sizeOf(inferred) !== x.size || !inferred.every(Number.isInteger))
    fail('Reshape', `cannot reshape ${x} to [${shape}]`);
  if (inferred.every((d, i) => d === x.shape[i]) && inferred.length === x.rank) return x;
  return x.graph.addNode('Reshape', [x, int64s(x.graph, inferred)], [{ dtype: x.dtype, shape: inferred }])[0];
}

export function transpose(x: Value, perm?: readonly number[]): Value {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  if (p.length !== x.rank) fail('Transpose', `perm [${p}] does not match ${x}`);
  return x.graph.addNode('Transpose', [x], [{ dtype: x.dtype, shape: p.map((i) => x.shape[i]) }], { perm: ints(p) })[0];
}

export function unsqueeze(x: Value, axes: number[]): Value {
  const rank = x.rank + axes.length;
  const ax = axes.map((a) => normAxis(a, rank)).sort((p, q) => p - q);
  const shape: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[k++]);
  return x.graph.addNode('Unsqueeze', [x, int64s(x.graph, ax)], [{ dtype: x.dtype, shape }])[0];
}

export function squeeze(x: Value, axes: number[]): Value {
  const ax = axes.map((a) => normAxis(a, x.rank));
  for (const a of ax) if (x.shape[a] !== 1) fail('Squeeze', `axis ${a} of ${x} is not 1`);
  return x.graph.addNode(
    'Squeeze',
    [x, int64s(x.graph, ax)],
    [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !ax.includes(i)) }],
  )[0];
}

export function concat(xs: Value[], axis: number): Value {
  const a = normAxis(axis, xs[0].rank);
  const shape = [...xs[0].shape];
  shape[a] = 0;
  for (const x of xs) {
    if (x.rank !== xs[0].rank || x.dtype !== xs[0].dtype || x.shape.some((d, i) => i !== a && d !== xs[0].shape[i]))
      fail('Concat', `incompatible inputs ${xs.join(', ')}`);
    shape[a] += x.shape[a];
  }
  if (xs.length === 1) return xs[0];
  return xs[0].graph.addNode('Concat', xs, [{ dtype: xs[0].dtype, shape }], { axis: int(a) })[0];
}

/** Slice with unit steps along the given axes (start/end clamped like numpy). */
export function slice(x: Value, starts: number[], ends: number[], axes: number[]): Value {
  const shape = [...x.shape];
  const st: number[] = [],
    en: number[] = [];
  axes.forEach((axis, i) => {
    const a = normAxis(axis, x.rank);
    const dim = x.shape[a];
    const s = Math.min(Math.max(starts[i] < 0 ? starts[i] + dim : starts[i], 0), dim);
    const e = Math.min(Math.max(ends[i] < 0 ? ends[i] + dim : ends[i], 0), dim);
    st.push(s);
    en.push(Math.max(e, s));
    shape[a] = Math.max(e - s, 0);
  });
  const g = x.graph;
  return g.addNode(
    'Slice',
    [
      x,
      int64s(g, st),
      int64s(g, en),
      int64s(
        g,
        axes.map((a) => normAxis(a, x.rank)),
      ),
    ],
    [{ dtype: x.dtype, shape }],
  )[0];
}

export function split(x: Value, sizes: number[], axis: number): Value[] {
  const a = normAxis(axis, x.rank);
  if (sizes.reduce((p, q) => p + q, 0) !== x.shape[a])
    fail('Split', `sizes [${sizes}] do not add up to axis ${a} of ${x}`);
  return x.graph.addNode(
    'Split',
    [x, int64s(x.graph, sizes)],
    sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? s : d)) })),
    { axis: int(a) },
  );
}

export function expand(x: Value, shape: readonly number[]): Value {
  const out = broadcastShapes(x.shape, shape, 'Expand');
  return x.graph.addNode('Expand', [x, int64s(x.graph, shape)], [{ dtype: x.dtype, shape: out }])[0];
}

// ---- indexing --------------------------------------------------------------------------------

export function gather(data: Value, indices: Value, axis = 0): Value {
  const a = normAxis(axis, data.rank);
  if (indices.dtype !== 'int64' && indices.dtype !== 'int32')
    fail('Gather', `indices must be integers, got ${indices}`);
  const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
  return data.graph.addNode('Gather', [data, indices], [{ dtype: data.dtype, shape }], { axis: int(a) })[0];
}

/** ScatterND with reduction=add into `data` (used for the embedding gradient). */
export function scatterNDAdd(data: Value, indices: Value, updates: Value): Value {
  return data.graph.addNode('ScatterND', [data, indices, updates], [{ dtype: data.dtype, shape: data.shape }], {
    reduction: { type: 'string', value: 'add' },
  })[0];
}

/** One-hot along a new last axis, built as Equal(indices, range) so it works for any float dtype. */
export function oneHot(indices: Value, depth: number, dtype: DType): Value {
  const g = indices.graph;
  const range = constant(
    g,
    { dtype: 'int64', shape: [depth], data: BigInt64Array.from({ length: depth }, (_, i) => BigInt(i)) },
    'range',
  );
  return cast(equal(unsqueeze(cast(indices, 'int64'), [-1]), range), dtype);
}

/**
 * SoftmaxCrossEntropyLoss over the labels that are not `ignoreIndex`: their mean (default) or sum.
 * scores [N, C] (or [N, C, D...]), labels [N] (or [N, D...]) int64. Returns [loss (scalar), log_prob].
 */
export function softmaxCrossEntropy(
  scores: Value,
  labels: Value,
  ignoreIndex = -100,
  reduction: 'mean' | 'sum' = 'mean',
): [Value, Value] {
  if (labels.dtype !== 'int64') fail('SoftmaxCrossEntropyLoss', `labels must be int64, got ${labels}`);
  if (labels.shape[0] !== scores.shape[0] || labels.rank !== scores.rank - 1)
    fail('SoftmaxCrossEntropyLoss', `labels ${labels} do not match scores ${scores}`);
  const [loss, logProb] = scores.graph.addNode(
    'SoftmaxCrossEntropyLoss',
    [scores, labels],
    [
      { dtype: scores.dtype, shape: [] },
      { dtype: scores.dtype, shape: scores.shape },
    ],
    { reduction: { type: 'string', value: reduction }, ignore_index: int(ignoreIndex) },
  );
  return [loss, logProb];
}

/** How many labels are not `ignoreIndex` (at least 1, so a mean over none is 0, not NaN), as a `dtype` scalar. */
export function labelCount(labels: Value, ignoreIndex: number, dtype: DType): Value {
  const counted = reduceSum(cast(not(equal(labels, scalar(labels.graph, ignoreIndex, 'int64'))), dtype), [0], false);
  const one = scalar(labels.graph, 1, dtype);
  return where(less(counted, one), one, counted);
}

/**
 * d(cross-entropy)/d(scores) given SoftmaxCrossEntropyLoss's log_prob [N, C]: (softmax - onehot) * scale
 * on rows whose label is not `ignoreIndex`, 0 on the others. `scale` is a scalar (dloss, or
 * dloss / count for the mean).
 */
export function crossEntropyScoresGrad(logProb: Value, labels: Value, ignoreIndex: number, scale: Value): Value {
  const ignored = equal(labels, scalar(labels.graph, ignoreIndex, 'int64'));
  const safe = where(ignored, scalar(labels.graph, 0, 'int64'), labels);
  const weight = mul(cast(not(ignored), logProb.dtype), scale);
  return mul(sub(exp(logProb), oneHot(safe, logProb.shape[1], logProb.dtype)), unsqueeze(weight, [1]));
}

/** Index of the largest value along `axis` (int64, that axis removed). */
export function argMax(x: Value, axis = -1): Value {
  const a = normAxis(axis, x.rank);
  return x.graph.addNode('ArgMax', [x], [{ dtype: 'int64', shape: x.shape.filter((_, i) => i !== a) }], {
    axis: int(a),
    keepdims: int(0),
  })[0];
}

export const ONNX_DTYPE: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11 };

/** Constant-mode Pad; `pads` is [begin_0..begin_n, end_0..end_n] as in ONNX. */
export function pad(x: Value, pads: readonly number[]): Value {
  const shape = x.shape.map((d, i) => d + pads[i] + pads[i + x.rank]);
  return x.graph.addNode('Pad', [x, int64s(x.graph, pads)], [{ dtype: x.dtype, shape }], {
    mode: { type: 'string', value: 'constant' },
  })[0];
}

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
