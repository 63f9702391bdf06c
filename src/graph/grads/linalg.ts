import { registerGradient } from './registry.js';
import { unbroadcast, input } from './util.js';
import * as op from '../ops.js';
import type { Value } from '../ir.js';

const swapLast = (x: Value) => op.transpose(x, [...x.shape.slice(0, -2).map((_, i) => i), x.rank - 1, x.rank - 2]);

// a [..., M, K] @ b [..., K, N]. When b is a 2-D weight shared across a batch, fold the batch into
// the rows so each product is one large Gemm with its transposed operand read in place (transA /
// transB) instead of a Transpose node that copies a weight or an activation at every run.
registerGradient('MatMul', (n, [dy]) => {
  const [a, b] = [input(n, 0), input(n, 1)];
  if (b.rank === 2 && a.rank >= 2) {
    const k = a.shape[a.rank - 1];
    const nOut = dy!.shape[dy!.rank - 1];
    const rows = (x: Value, width: number) => (x.rank === 2 ? x : op.reshape(x, [-1, width]));
    const back = (x: Value) => (a.rank === 2 ? x : op.reshape(x, a.shape));
    return [
      () => back(op.gemm(rows(dy!, nOut), b, null, { transB: true })),
      () => op.gemm(rows(a, k), rows(dy!, nOut), null, { transA: true }),
    ];
  }
  return [
    () => unbroadcast(op.matmul(dy!, swapLast(b)), a.shape),
    () => unbroadcast(op.matmul(swapLast(a), dy!), b.shape),
  ];
});

// y = alpha * op(A) op(B) + beta * C
registerGradient('Gemm', (n, [dy]) => {
  const [a, b, c] = [input(n, 0), input(n, 1), n.inputs[2]];
  const transA = op.attrInt(n, 'transA', 0) === 1;
  const transB = op.attrInt(n, 'transB', 0) === 1;
  const alpha = op.attrInt(n, 'alpha', 1);
  const beta = op.attrInt(n, 'beta', 1);
  return [
    () =>
      transA
        ? op.gemm(b, dy!, null, { transA: transB, transB: true, alpha })
        : op.gemm(dy!, b, null, { transB: !transB, alpha }),
    () =>
      transB
        ? op.gemm(dy!, a, null, { transA: true, transB: transA, alpha })
        : op.gemm(a, dy!, null, { transA: !transA, alpha }),
    c ? () => unbroadcast(beta === 1 ? dy! : op.mul(dy!, op.scalarLike(dy!, beta)), c.shape) : null,
  ];
});
