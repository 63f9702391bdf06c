import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { capRatio, rawLogits, type LmHead } from './llama.js';

/**
 * The LM head's cross-entropy, computed over chunks of rows so that no [tokens, vocabulary] tensor
 * exists whole. A Qwen2.5-sized vocabulary (151,936) at 8 x 128 tokens makes 622 MB of float32
 * logits, and the loss's backward used to hold five tensors of that size at once (log-probs,
 * probabilities, one-hot, their difference, the scaled gradient). Here each chunk computes its
 * logits, its summed loss and — in training programs — its own d(loss)/d(logits), which is turned
 * into d(loss)/d(hidden) (and d(loss)/d(weight) when the projection trains) before the next chunk
 * starts, so only one chunk's [rows, V] tensors are alive. The gradient is the standard
 * (softmax - onehot) / count (through the soft-cap where the model has one); autodiff takes over from d(loss)/d(hidden) (partition.ts), and the
 * whole-model finite-difference test checks the two together.
 */

/** Elements of one chunk's [rows, V] logits: 8 Mi (32 MiB in float32). */
export const LOSS_CHUNK_ELEMENTS = 1 << 23;

export interface LmLossOptions {
  ignoreIndex: number;
  /** What to differentiate: nothing (evaluation), the LM head's input, or also its weight (when it trains). */
  gradients: 'none' | 'hidden' | 'hidden+weight';
  /** Also return the argmax prediction of every row. */
  predictions: boolean;
  /** Rows per chunk (default: as many as fit LOSS_CHUNK_ELEMENTS). */
  chunkRows?: number;
}

export interface LmLoss {
  /** Mean cross-entropy over the labels that are not ignored (0 when all are). */
  loss: Value;
  /** Argmax per row, int64 [rows]. */
  pred?: Value;
  /** d(loss)/d(head.hidden), [rows, D]. */
  gradHidden?: Value;
  /** d(loss)/d(head.weight), the weight's shape. */
  gradWeight?: Value;
  chunks: number;
}

/** The value's first element as a scalar: a cheap handle on "this tensor has been computed". */
function firstElement(x: Value): Value {
  const one = op.slice(
    x,
    x.shape.map(() => 0),
    x.shape.map(() => 1),
    x.shape.map((_, i) => i),
  );
  return op.reshape(one.dtype === 'float32' ? one : op.cast(one, 'float32'), []);
}

export function lmHeadLoss(head: LmHead, labels: Value, o: LmLossOptions): LmLoss {
  const n = head.hidden.shape[0];
  const vocab = head.vocabMajor ? head.weight.shape[0] : head.weight.shape[1];
  const rows = Math.max(1, Math.min(n, o.chunkRows ?? Math.floor(LOSS_CHUNK_ELEMENTS / vocab)));
  const invCount = op.reciprocal(op.labelCount(labels, o.ignoreIndex, 'float32'));
  const losses: Value[] = [],
    preds: Value[] = [],
    gradRows: Value[] = [];
  let gradWeight: Value | null = null;
  // A zero that depends on the previous chunk's results, added to the next chunk's rows: ONNX Runtime
  // runs nodes in a topological order of its choosing, and this keeps it from computing every chunk's
  // logits before any is consumed (which would bring the whole [tokens, V] back).
  let sequencePoint: Value | null = null;
  for (let r0 = 0; r0 < n; r0 += rows) {
    const r1 = Math.min(n, r0 + rows);
    const whole = r0 === 0 && r1 === n;
    let h = whole ? head.hidden : op.slice(head.hidden, [r0], [r1], [0]);
    const y = whole ? labels : op.slice(labels, [r0], [r1], [0]);
    if (sequencePoint) h = op.add(h, sequencePoint);
    const raw = rawLogits(head, h);
    const ratio = capRatio(head, raw);
    const logits = ratio ? op.mul(ratio, op.scalarLike(ratio, head.softcap!)) : raw;
    const [lossSum, logProb] = op.softmaxCrossEntropy(logits, y, o.ignoreIndex, 'sum');
    losses.push(lossSum);
    const done = [lossSum];
    if (o.predictions) {
      preds.push(op.argMax(logits, 1));
      done.push(firstElement(preds[preds.length - 1]));
    }
    if (o.gradients !== 'none') {
      let dLogits = op.crossEntropyScoresGrad(logProb, y, o.ignoreIndex, invCount);
      // Soft-capped logits cap * tanh(raw / cap): d/d(raw) = (1 - tanh^2), upstream first (grads/unary.ts).
      if (ratio) {
        const t = op.mul(dLogits, ratio);
        dLogits = op.sub(dLogits, op.mul(t, ratio));
      }
      // raw logits = h W (W [D, V]) or h E^T (E [V, D]).
      const dh = head.vocabMajor
        ? op.gemm(dLogits, head.weight, null)
        : op.gemm(dLogits, head.weight, null, { transB: true });
      gradRows.push(dh);
      done.push(firstElement(dh));
      if (o.gradients === 'hidden+weight') {
        const dW = head.vocabMajor
          ? op.gemm(dLogits, h, null, { transA: true })
          : op.gemm(h, dLogits, null, { transA: true });
        gradWeight = gradWeight ? op.add(gradWeight, dW) : dW;
        done.push(firstElement(gradWeight));
      }
    }
    if (r1 < n)
      sequencePoint = op.mul(
        done.reduce((a, b) => op.add(a, b)),
        op.scalar(head.hidden.graph, 0),
      );
  }
  return {
    loss: op.mul(
      losses.reduce((a, b) => op.add(a, b)),
      invCount,
    ),
    ...(o.predictions ? { pred: op.concat(preds, 0) } : {}),
    ...(gradRows.length ? { gradHidden: op.concat(gradRows, 0) } : {}),
    ...(gradWeight ? { gradWeight } : {}),
    chunks: losses.length,
  };
}
