import type { Batch } from '../data/batches.js';
import { IGNORE_INDEX } from '../model/partition.js';

export interface EvalMetrics {
  loss: number;
  perplexity: number;
  /** Example-level for prompt/completion data (every completion token right), else token-level. */
  accuracy: number;
  examples: number;
}

/** Aggregate loss (weighted by labelled tokens) and accuracy over evaluation batches. */
export async function evaluateBatches(
  batches: { batch: Batch; real: number }[],
  predict: (b: Batch) => Promise<{ loss: number; pred: BigInt64Array }>,
  exampleLevel: boolean,
): Promise<EvalMetrics> {
  let lossSum = 0,
    tokens = 0,
    correct = 0,
    total = 0,
    examples = 0;
  for (const { batch, real } of batches) {
    const { loss, pred } = await predict(batch);
    lossSum += loss * batch.labelCount;
    tokens += batch.labelCount;
    const labels = batch.labels.data as BigInt64Array;
    const seq = batch.tokens.shape[1];
    for (let r = 0; r < real; r++) {
      let allRight = true,
        any = false;
      for (let t = 0; t < seq; t++) {
        const l = labels[r * seq + t];
        if (l === BigInt(IGNORE_INDEX)) continue;
        any = true;
        const ok = pred[r * seq + t] === l;
        allRight &&= ok;
        if (!exampleLevel) {
          total++;
          if (ok) correct++;
        }
      }
      if (exampleLevel && any) {
        total++;
        if (allRight) correct++;
      }
      examples++;
    }
  }
  const loss = tokens ? lossSum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), accuracy: total ? correct / total : NaN, examples };
}
