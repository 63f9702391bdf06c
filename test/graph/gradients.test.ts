import * as op from '../../src/graph/ops.js';
import { registeredGradientOps } from '../../src/graph/grads/index.js';
import { gradCheck, type GradInput } from '../helpers/gradcheck.js';
import type { Value } from '../../src/graph/ir.js';

type Case = {
  name: string;
  op: string;
  build: (x: Value[]) => Value;
  inputs: GradInput[];
  dtype?: 'float32';
  tol?: number;
  eps?: number;
  reference?: (x: Value[]) => Value;
};

const positive: [number, number] = [0.5, 2];
const ids = (vals: number[]) => BigInt64Array.from(vals.map(BigInt));

// A 4-bit weight [K 64, N 3] as MatMulNBits reads it, and an int8 one [K 5, N 3] with its scales.
const nbits = { k: 64, n: 3, bits: 4, blockSize: 32, accuracyLevel: 0 } as const;
const packed = Uint8Array.from({ length: 3 * 2 * 16 }, (_, i) => (i * 37 + 11) % 256);
const int8s = Int8Array.from({ length: 15 }, (_, i) => ((i * 29) % 255) - 127);

const cases: Case[] = [
  {
    name: 'Add same shape',
    op: 'Add',
    build: ([a, b]) => op.add(a, b),
    inputs: [
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [2, 3] },
    ],
  },
  {
    name: 'Add broadcast row and leading axis',
    op: 'Add',
    build: ([a, b]) => op.add(a, b),
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [1, 4] },
    ],
  },
  {
    name: 'Sub broadcast column',
    op: 'Sub',
    build: ([a, b]) => op.sub(a, b),
    inputs: [
      { name: 'a', shape: [3, 4] },
      { name: 'b', shape: [3, 1] },
    ],
  },
  {
    name: 'Mul broadcast scalar',
    op: 'Mul',
    build: ([a, b]) => op.mul(a, b),
    inputs: [
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [] },
    ],
  },
  {
    name: 'Div broadcast',
    op: 'Div',
    build: ([a, b]) => op.div(a, b),
    inputs: [
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [3], range: positive },
    ],
  },
  {
    name: 'Pow both inputs',
    op: 'Pow',
    build: ([a, b]) => op.pow(a, b),
    inputs: [
      { name: 'a', shape: [2, 3], range: positive },
      { name: 'b', shape: [2, 3] },
    ],
  },
  { name: 'Neg', op: 'Neg', build: ([a]) => op.neg(a), inputs: [{ name: 'a', shape: [5] }] },
  { name: 'Sqrt', op: 'Sqrt', build: ([a]) => op.sqrt(a), inputs: [{ name: 'a', shape: [2, 3], range: positive }] },
  {
    name: 'Reciprocal',
    op: 'Reciprocal',
    build: ([a]) => op.reciprocal(a),
    inputs: [{ name: 'a', shape: [2, 3], range: positive }],
  },
  { name: 'Exp', op: 'Exp', build: ([a]) => op.exp(a), inputs: [{ name: 'a', shape: [2, 3] }] },
  { name: 'Log', op: 'Log', build: ([a]) => op.log(a), inputs: [{ name: 'a', shape: [2, 3], range: positive }] },
  { name: 'Sigmoid', op: 'Sigmoid', build: ([a]) => op.sigmoid(a), inputs: [{ name: 'a', shape: [2, 3] }] },
  { name: 'Tanh', op: 'Tanh', build: ([a]) => op.tanh(a), inputs: [{ name: 'a', shape: [2, 3] }] },
  // ONNX Runtime's CPU Erf is float32 only: checked in float32 with a coarser step and tolerance.
  {
    name: 'Erf',
    op: 'Erf',
    build: ([a]) => op.erf(a),
    inputs: [{ name: 'a', shape: [2, 3] }],
    dtype: 'float32',
    eps: 1e-2,
    tol: 2e-3,
  },
  {
    name: 'GELU (erf form, through Mul, Add and Erf)',
    op: 'Erf',
    build: ([a]) => op.gelu(a),
    inputs: [{ name: 'a', shape: [2, 3] }],
    dtype: 'float32',
    eps: 1e-2,
    tol: 2e-3,
  },
  { name: 'Identity', op: 'Identity', build: ([a]) => op.identity(a), inputs: [{ name: 'a', shape: [3] }] },
  {
    name: 'Softmax last axis',
    op: 'Softmax',
    build: ([a]) => op.softmax(a, -1),
    inputs: [{ name: 'a', shape: [2, 5] }],
  },
  {
    name: 'Softmax middle axis',
    op: 'Softmax',
    build: ([a]) => op.softmax(a, 1),
    inputs: [{ name: 'a', shape: [2, 3, 2] }],
  },
  {
    name: 'ReduceSum keepdims',
    op: 'ReduceSum',
    build: ([a]) => op.reduceSum(a, [1], true),
    inputs: [{ name: 'a', shape: [2, 3, 4] }],
  },
  {
    name: 'ReduceSum no keepdims',
    op: 'ReduceSum',
    build: ([a]) => op.reduceSum(a, [0, 2], false),
    inputs: [{ name: 'a', shape: [2, 3, 4] }],
  },
  {
    name: 'ReduceMean',
    op: 'ReduceMean',
    build: ([a]) => op.reduceMean(a, [-1], false),
    inputs: [{ name: 'a', shape: [3, 4] }],
  },
  {
    name: 'ReduceMax',
    op: 'ReduceMax',
    build: ([a]) => op.reduceMax(a, [1], true),
    inputs: [{ name: 'a', shape: [3, 4] }],
  },
  {
    name: 'MatMul 2-D',
    op: 'MatMul',
    build: ([a, b]) => op.matmul(a, b),
    inputs: [
      { name: 'a', shape: [3, 4] },
      { name: 'b', shape: [4, 2] },
    ],
  },
  {
    name: 'MatMul batched with shared 2-D weight',
    op: 'MatMul',
    build: ([a, b]) => op.matmul(a, b),
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [4, 5] },
    ],
  },
  {
    name: 'MatMul 4-D batched both',
    op: 'MatMul',
    build: ([a, b]) => op.matmul(a, b),
    inputs: [
      { name: 'a', shape: [2, 2, 3, 4] },
      { name: 'b', shape: [2, 2, 4, 3] },
    ],
  },
  {
    name: 'MatMul broadcast batch',
    op: 'MatMul',
    build: ([a, b]) => op.matmul(a, b),
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [1, 4, 2] },
    ],
  },
  {
    name: 'Gemm plain + bias row',
    op: 'Gemm',
    build: ([a, b, c]) => op.gemm(a, b, c, { alpha: 0.5, beta: 2 }),
    inputs: [
      { name: 'a', shape: [3, 4] },
      { name: 'b', shape: [4, 2] },
      { name: 'c', shape: [2] },
    ],
  },
  {
    name: 'Gemm transA transB',
    op: 'Gemm',
    build: ([a, b, c]) => op.gemm(a, b, c, { transA: true, transB: true }),
    inputs: [
      { name: 'a', shape: [4, 3] },
      { name: 'b', shape: [2, 4] },
      { name: 'c', shape: [3, 2] },
    ],
  },
  {
    name: 'Gemm transB only',
    op: 'Gemm',
    build: ([a, b]) => op.gemm(a, b, null, { transB: true }),
    inputs: [
      { name: 'a', shape: [3, 4] },
      { name: 'b', shape: [2, 4] },
    ],
  },
  {
    name: 'Reshape',
    op: 'Reshape',
    build: ([a]) => op.mul(op.reshape(a, [3, -1]), op.reshape(a, [3, -1])),
    inputs: [{ name: 'a', shape: [2, 3, 2] }],
  },
  {
    name: 'Transpose',
    op: 'Transpose',
    build: ([a]) => op.transpose(a, [2, 0, 1]),
    inputs: [{ name: 'a', shape: [2, 3, 4] }],
  },
  {
    name: 'Unsqueeze',
    op: 'Unsqueeze',
    build: ([a]) => op.unsqueeze(a, [0, 2]),
    inputs: [{ name: 'a', shape: [2, 3] }],
  },
  { name: 'Squeeze', op: 'Squeeze', build: ([a]) => op.squeeze(a, [1]), inputs: [{ name: 'a', shape: [2, 1, 3] }] },
  {
    name: 'Concat',
    op: 'Concat',
    build: ([a, b]) => op.concat([a, b, a], 1),
    inputs: [
      { name: 'a', shape: [2, 2] },
      { name: 'b', shape: [2, 3] },
    ],
  },
  {
    name: 'Slice',
    op: 'Slice',
    build: ([a]) => op.slice(a, [1, 0], [3, 2], [1, 2]),
    inputs: [{ name: 'a', shape: [2, 4, 3] }],
  },
  {
    name: 'Split (one output unused)',
    op: 'Split',
    build: ([a]) => op.split(a, [1, 2, 1], 1)[1],
    inputs: [{ name: 'a', shape: [2, 4] }],
  },
  {
    name: 'Split (two outputs used)',
    op: 'Split',
    build: ([a]) => {
      const [p, , r] = op.split(a, [1, 2, 1], 1);
      return op.mul(p, r);
    },
    inputs: [{ name: 'a', shape: [2, 4] }],
  },
  { name: 'Expand', op: 'Expand', build: ([a]) => op.expand(a, [2, 3, 4]), inputs: [{ name: 'a', shape: [3, 1] }] },
  {
    name: 'Where',
    op: 'Where',
    build: ([a, b]) => op.where(op.greater(a, b), a, b),
    inputs: [
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [3] },
    ],
  },
  // The float32 round trip quantises x, so the step must be far above float32 resolution.
  {
    name: 'Cast float to float',
    op: 'Cast',
    build: ([a]) => op.cast(op.cast(a, 'float32'), 'float64'),
    inputs: [{ name: 'a', shape: [4] }],
    eps: 1e-2,
    tol: 1e-4,
  },
  {
    name: 'Gather rows with repeats (embedding)',
    op: 'Gather',
    build: ([t, i]) => op.gather(t, i, 0),
    inputs: [
      { name: 't', shape: [5, 3] },
      { name: 'i', shape: [2, 3], dtype: 'int64', data: ids([0, 4, 0, 2, 2, 2]), noGrad: true },
    ],
  },
  {
    name: 'SoftmaxCrossEntropyLoss with ignore_index',
    op: 'SoftmaxCrossEntropyLoss',
    build: ([s, l]) => op.softmaxCrossEntropy(s, l, -100)[0],
    inputs: [
      { name: 's', shape: [4, 5] },
      { name: 'l', shape: [4], dtype: 'int64', data: ids([1, -100, 4, 1]), noGrad: true },
    ],
  },
  {
    name: 'SoftmaxCrossEntropyLoss, reduction sum',
    op: 'SoftmaxCrossEntropyLoss',
    build: ([s, l]) => op.softmaxCrossEntropy(s, l, -100, 'sum')[0],
    inputs: [
      { name: 's', shape: [4, 5] },
      { name: 'l', shape: [4], dtype: 'int64', data: ids([3, -100, 0, 3]), noGrad: true },
    ],
  },
  {
    name: 'MatMulNBits (4-bit, float32 products) vs its dequantized weight',
    op: 'MatMulNBits',
    build: ([a, b, s]) => op.matMulNBits(a, b, s, nbits),
    inputs: [
      { name: 'a', shape: [2, 3, 64] },
      { name: 'b', shape: [3, 2, 16], dtype: 'uint8', data: packed, noGrad: true },
      { name: 's', shape: [6], range: positive, noGrad: true },
    ],
    dtype: 'float32',
    eps: 1e-2,
    tol: 2e-3,
  },
  {
    name: 'DynamicQuantizeMatMul: straight-through, the gradient of a @ (b * scale)',
    op: 'DynamicQuantizeMatMul',
    build: ([a, b, s]) => op.dynamicQuantizeMatMul(a, b, s),
    reference: ([a, b, s]) => op.matmul(a, op.mul(op.cast(b, 'float32'), s)),
    inputs: [
      { name: 'a', shape: [2, 4, 5] },
      { name: 'b', shape: [5, 3], dtype: 'int8', data: int8s, noGrad: true },
      { name: 's', shape: [3], range: [0.001, 0.01], noGrad: true },
    ],
    dtype: 'float32',
    eps: 1e-2,
    tol: 2e-3,
  },
  {
    name: 'fan-out sums contributions',
    op: 'Mul',
    build: ([a]) => op.add(op.mul(a, a), op.exp(a)),
    inputs: [{ name: 'a', shape: [3] }],
  },
];

describe('gradient rules vs central finite differences (float64)', () => {
  test.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const r = await gradCheck(c.build, c.inputs, { dtype: c.dtype, eps: c.eps, reference: c.reference });
    if (r.maxRelError > (c.tol ?? 1e-5))
      throw new Error(`${c.name}: max relative error ${r.maxRelError} at ${r.worst}`);
    expect(r.maxRelError).toBeLessThan(c.tol ?? 1e-5);
  });

  test('every registered rule has a finite-difference case', () => {
    const covered = new Set(cases.map((c) => c.op));
    expect(registeredGradientOps().filter((o) => !covered.has(o))).toEqual([]);
  });
});
