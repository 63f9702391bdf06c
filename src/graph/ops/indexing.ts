import type { DType, Value } from '../ir.js';
import { constant, fail, int, normAxis, scalar } from './core.js';
import { cast, equal, exp, less, mul, not, sub, where } from './elementwise.js';
import { reduceSum } from './linalg.js';
import { unsqueeze } from './shape.js';

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
