import type { Value } from '../ir.js';
import { reduceSum, reshape } from '../ops.js';

/** Sum a broadcast gradient back to the shape of the input it came from. */
export function unbroadcast(dy: Value, shape: readonly number[]): Value {
  const lead = dy.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && dy.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length ? reduceSum(dy, axes, true) : dy;
  return reshape(summed, shape);
}

export function input(node: { inputs: (Value | null)[] }, i: number): Value {
  const v = node.inputs[i];
  if (!v) throw new Error(`missing input ${i}`);
  return v;
}
