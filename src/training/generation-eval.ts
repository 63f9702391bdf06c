import type { ExperimentConfig } from '../config/schema.js';
import { encodePrompt } from '../data/batches.js';
import { isPromptExample, type Example } from '../data/examples.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { ModelConfig } from '../model/config.js';
import { BatchGenerator } from '../model/generate.js';
import type { ParamStore, PeftConfig } from '../model/params.js';
import type { RuntimeOptions } from '../runtime/session.js';
import { exactMatch, rougeLF1 } from './text-metrics.js';

export interface GenerationSample {
  prompt: string;
  reference: string;
  generated: string;
  rouge_l_f1: number;
}

export interface GenerationMetrics {
  rouge_l_f1: number;
  exact_match: number;
  examples: number;
  /** The first few held-out examples with what the model wrote (for the report). */
  samples: GenerationSample[];
}

export interface GenerationEvalOptions {
  batchSize: number;
  /** The training sequence length: prompts are cut as in training, so the model sees what it learned from. */
  seqLen: number;
  maxNewTokens: number;
  /** Held-out examples to score (the first N, as teacher-forced evaluation takes its batches). */
  maxExamples: number | null;
  samples?: number;
}

/**
 * Task generate, scored the way a user meets the model: greedy decoding with the KV cache from each
 * held-out prompt, until EOS or `maxNewTokens`, then ROUGE-L F1 and exact match against the
 * reference completion. The same function scores the federated and the centralized model.
 */
export async function evaluateGeneration(
  model: { config: ModelConfig; peft: PeftConfig; store: ParamStore },
  tokenizer: Tokenizer,
  examples: Example[],
  o: GenerationEvalOptions,
  runtime: RuntimeOptions = {},
): Promise<GenerationMetrics> {
  const pairs = examples.filter(isPromptExample).slice(0, o.maxExamples ?? undefined);
  if (pairs.length === 0) throw new Error('generation evaluation needs prompt/completion examples');
  const encoded = pairs.map((e) => encodePrompt(e, tokenizer, o.seqLen).prompt);
  const promptLen = Math.max(...encoded.map((p) => p.length));
  const gen = await BatchGenerator.create(
    model.config,
    model.peft,
    model.store,
    { batch: Math.min(o.batchSize, pairs.length), promptLen, maxNewTokens: o.maxNewTokens },
    runtime,
  );
  const scored: GenerationSample[] = [];
  let exact = 0;
  try {
    for (let i = 0; i < pairs.length; i += gen.batch) {
      const outs = await gen.run(encoded.slice(i, i + gen.batch), {
        maxNewTokens: o.maxNewTokens,
        temperature: 0,
        topK: 0,
        seed: 0,
        eos: tokenizer.eos,
      });
      outs.forEach((ids, k) => {
        const e = pairs[i + k];
        const generated = tokenizer.decode(ids);
        if (exactMatch(generated, e.completion)) exact++;
        scored.push({
          prompt: e.prompt,
          reference: e.completion.trim(),
          generated: generated.trim(),
          rouge_l_f1: rougeLF1(generated, e.completion),
        });
      });
    }
  } finally {
    await gen.release();
  }
  return {
    rouge_l_f1: scored.reduce((a, s) => a + s.rouge_l_f1, 0) / scored.length,
    exact_match: exact / scored.length,
    examples: scored.length,
    samples: scored.slice(0, o.samples ?? 8),
  };
}

/** The options a config implies: the eval batches' examples, the training sequence length. */
export function generationEvalOptions(cfg: ExperimentConfig): GenerationEvalOptions {
  const { batch_size: batchSize, seq_len: seqLen } = cfg.data;
  return {
    batchSize,
    seqLen,
    maxNewTokens: cfg.eval.max_new_tokens,
    maxExamples: cfg.eval.max_batches === null ? null : cfg.eval.max_batches * batchSize,
  };
}
