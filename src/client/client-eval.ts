import { evalBatches } from '../data/batches.js';
import { isPromptExample, type Example } from '../data/examples.js';
import { evaluateBatches, type EvalMetrics } from '../training/evaluate.js';
import type { ClientLink } from './client-link.js';
import type { Trainer } from './trainer.js';

/**
 * An evaluation pass through the trunk: forward only, every held-out batch's h_A up and its h_B
 * back, scored by the tail. The metrics go to the server; the parameters stay here.
 */
export async function evaluateThroughTrunk(
  t: Trainer,
  link: ClientLink,
  round: number,
  test: Example[],
): Promise<EvalMetrics> {
  const { batch_size: B, seq_len: S } = t.cfg.data;
  let step = 0;
  return evaluateBatches(
    evalBatches(test, t.tokenizer, B, S, t.cfg.eval.max_batches),
    async (b) => {
      const at = ++step;
      link.sendActivations(round, at, await t.head.forward(b.tokens), true);
      return t.tail.evaluate(await link.trunkOut(round, at), b.labels);
    },
    test.some(isPromptExample),
  );
}
