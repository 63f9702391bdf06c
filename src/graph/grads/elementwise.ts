import { registerGradient } from './registry.js';
import { unbroadcast, input } from './util.js';
import * as op from '../ops.js';

registerGradient('Add', (n, [dy]) => [
  () => unbroadcast(dy!, input(n, 0).shape),
  () => unbroadcast(dy!, input(n, 1).shape),
]);

registerGradient('Sub', (n, [dy]) => [
  () => unbroadcast(dy!, input(n, 0).shape),
  () => unbroadcast(op.neg(dy!), input(n, 1).shape),
]);

registerGradient('Mul', (n, [dy]) => {
  const [a, b] = [input(n, 0), input(n, 1)];
  return [() => unbroadcast(op.mul(dy!, b), a.shape), () => unbroadcast(op.mul(dy!, a), b.shape)];
});

// y = a / b: da = dy / b, db = -dy * y / b
registerGradient('Div', (n, [dy]) => {
  const [a, b] = [input(n, 0), input(n, 1)];
  const y = n.outputs[0];
  return [() => unbroadcast(op.div(dy!, b), a.shape), () => unbroadcast(op.neg(op.div(op.mul(dy!, y), b)), b.shape)];
});

// y = a ^ b: da = dy * b * a^(b-1), db = dy * y * ln(a)
registerGradient('Pow', (n, [dy]) => {
  const [a, b] = [input(n, 0), input(n, 1)];
  const y = n.outputs[0];
  return [
    () => unbroadcast(op.mul(dy!, op.mul(b, op.pow(a, op.sub(b, op.scalarLike(b, 1))))), a.shape),
    () => unbroadcast(op.mul(dy!, op.mul(y, op.log(a))), b.shape),
  ];
});

registerGradient('Neg', (_n, [dy]) => [() => op.neg(dy!)]);
