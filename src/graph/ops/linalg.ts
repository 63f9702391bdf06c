import type { Shape, Value } from '../ir.js';
import { broadcastShapes, fail, float, int, int64s, ints, normAxis } from './core.js';

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
