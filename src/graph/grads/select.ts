import { registerGradient } from './registry.js';
import { unbroadcast, input } from './util.js';
import * as op from '../ops.js';

registerGradient('Where', (n, [dy]) => {
  const [cond, x, y] = [input(n, 0), input(n, 1), input(n, 2)];
  const zero = op.scalarLike(dy!, 0);
  return [
    null,
    () => unbroadcast(op.where(cond, dy!, zero), x.shape),
    () => unbroadcast(op.where(cond, zero, dy!), y.shape),
  ];
});

// Embedding lookup: scatter-add the rows of dy into a zero table (repeated ids accumulate).
registerGradient('Gather', (n, [dy]) => {
  const [data, indices] = [input(n, 0), input(n, 1)];
  if (op.attrInt(n, 'axis', 0) !== 0) throw new Error('Gather gradient supports axis 0 only');
  return [
    () => {
      const rows = op.reshape(op.cast(indices, 'int64'), [-1, 1]);
      const updates = op.reshape(dy!, [-1, ...data.shape.slice(1)]);
      return op.scatterNDAdd(op.expand(op.scalarLike(dy!, 0), data.shape), rows, updates);
    },
    null,
  ];
});

// Cross-entropy over non-ignored labels: dscores = (softmax - onehot) * mask * dloss (/ count for the mean).
registerGradient('SoftmaxCrossEntropyLoss', (n, [dLoss, dLogProb]) => {
  if (dLogProb) throw new Error('SoftmaxCrossEntropyLoss: gradient through log_prob is not supported');
  const [scores, labels] = [input(n, 0), input(n, 1)];
  if (scores.rank !== 2) throw new Error('SoftmaxCrossEntropyLoss gradient expects scores [N, C]');
  const ignore = op.attrInt(n, 'ignore_index', -100);
  const mean = n.attrs.reduction?.type !== 'string' || n.attrs.reduction.value === 'mean';
  return [
    () =>
      op.crossEntropyScoresGrad(
        n.outputs[1],
        labels,
        ignore,
        mean ? op.div(dLoss!, op.labelCount(labels, ignore, scores.dtype)) : dLoss!,
      ),
    null,
  ];
});
