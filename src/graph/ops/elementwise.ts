import type { Attr, DType, Value } from '../ir.js';
import { broadcastShapes, fail, int, normAxis, ONNX_DTYPE, scalarLike } from './core.js';

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
