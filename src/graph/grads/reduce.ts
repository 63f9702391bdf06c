import { registerGradient } from './registry.js';
import { input } from './util.js';
import * as op from '../ops.js';
import type { Node, Value } from '../ir.js';

function reducedAxes(n: Node): number[] {
  const x = input(n, 0);
  const axes =
    n.op === 'ReduceSum' ? op.constInts(n.inputs[1] ?? null) : (op.attrInts(n, 'axes') ?? x.shape.map((_, i) => i));
  return axes.map((a) => op.normAxis(a, x.rank));
}

/** dy reshaped to the keepdims shape, so it broadcasts against the input. */
function keptDy(n: Node, dy: Value): Value {
  const x = input(n, 0);
  const axes = reducedAxes(n);
  return op.reshape(
    dy,
    x.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
  );
}

registerGradient('ReduceSum', (n, [dy]) => [() => op.expand(keptDy(n, dy!), input(n, 0).shape), null]);

registerGradient('ReduceMean', (n, [dy]) => {
  const x = input(n, 0);
  const count = reducedAxes(n).reduce((p, a) => p * x.shape[a], 1);
  return [() => op.expand(op.div(keptDy(n, dy!), op.scalarLike(dy!, count)), x.shape)];
});

// The gradient goes to the maxima; ties share it equally.
registerGradient('ReduceMax', (n, [dy]) => {
  const x = input(n, 0);
  return [
    () => {
      const yKept = keptDy(n, n.outputs[0]);
      const mask = op.cast(op.equal(x, yKept), x.dtype);
      const share = op.div(keptDy(n, dy!), op.reduceSum(mask, reducedAxes(n), true));
      return op.mul(mask, share);
    },
  ];
});
