import { registerGradient } from './registry.js';
import { unbroadcast, input } from './util.js';
import * as op from '../ops.js';

registerGradient('Reshape', (n, [dy]) => [() => op.reshape(dy!, input(n, 0).shape), null]);
registerGradient('Unsqueeze', (n, [dy]) => [() => op.reshape(dy!, input(n, 0).shape), null]);
registerGradient('Squeeze', (n, [dy]) => [() => op.reshape(dy!, input(n, 0).shape), null]);
registerGradient('Expand', (n, [dy]) => [() => unbroadcast(dy!, input(n, 0).shape), null]);

registerGradient('Transpose', (n, [dy]) => {
  const perm = op.attrInts(n, 'perm')!;
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return [() => op.transpose(dy!, inverse)];
});

registerGradient('Concat', (n, [dy]) => {
  const axis = op.attrInt(n, 'axis', 0);
  let offset = 0;
  return n.inputs.map((x) => {
    const start = offset;
    offset += x!.shape[axis];
    return () => op.slice(dy!, [start], [start + x!.shape[axis]], [axis]);
  });
});

// Slice's gradient pads dy with zeros back to the input's extent.
registerGradient('Slice', (n, [dy]) => {
  const x = input(n, 0);
  const starts = op.constInts(n.inputs[1]);
  const axes = op.constInts(n.inputs[3]);
  return [
    () => {
      const pads = new Array<number>(2 * x.rank).fill(0);
      axes.forEach((a, i) => {
        pads[a] = starts[i];
        pads[a + x.rank] = x.shape[a] - starts[i] - dy!.shape[a];
      });
      return op.pad(dy!, pads);
    },
    null,
    null,
    null,
  ];
});

registerGradient('Split', (n, dys) => {
  const axis = op.attrInt(n, 'axis', 0);
  return [
    () =>
      op.concat(
        dys.map((d, i) => d ?? op.expand(op.scalarLike(n.outputs[i], 0), n.outputs[i].shape)),
        axis,
      ),
    null,
  ];
});
