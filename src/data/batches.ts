import { IGNORE_INDEX } from '../model/partition.js';
import { tensor, type TensorData } from '../runtime/tensor.js';
import { Rng } from '../util/rng.js';
import { isPromptExample, type Example } from './examples.js';
import type { Tokenizer } from './tokenizer.js';

export interface Batch {
  tokens: TensorData; // int64 [B, S]
  labels: TensorData; // int64 [B*S], IGNORE_INDEX where no loss is taken
  /** Tokens that carry a label (for tokens/s and loss weighting). */
  labelCount: number;
  examples: number;
}

/**
 * Token ids and next-token labels of one example, both length seq. Prompt examples take loss only
 * on the completion; a long prompt is cut so the completion always fits. A text longer than seq
 * is read from a window: at its start, or at a random offset drawn from `rng` (training), so every
 * part of a long document is seen over the epochs.
 */
/** A prompt example's ids as trained: BOS + the prompt, cut from the left so the completion fits, and completion + EOS. */
export function encodePrompt(
  e: { prompt: string; completion: string },
  tok: Tokenizer,
  seq: number,
): { prompt: number[]; completion: number[] } {
  if (tok.formatExample) e = tok.formatExample(e);
  const completion = [...tok.encode(e.completion), tok.eos];
  const room = Math.max(1, seq + 1 - completion.length - 1);
  return { prompt: [tok.bos, ...tok.encode(e.prompt).slice(-room)], completion };
}

export function encodeExample(e: Example, tok: Tokenizer, seq: number, rng?: Rng): { ids: number[]; labels: number[] } {
  let ids: number[];
  let firstLabel: number;
  if (isPromptExample(e)) {
    const { prompt, completion } = encodePrompt(e, tok, seq);
    ids = [...prompt, ...completion];
    firstLabel = prompt.length - 1;
  } else {
    ids = [tok.bos, ...tok.encode(e.text), tok.eos];
    firstLabel = 0;
    if (rng && ids.length > seq + 1) ids = ids.slice(rng.int(ids.length - seq));
  }
  ids = ids.slice(0, seq + 1);
  const input = new Array<number>(seq).fill(tok.pad);
  const labels = new Array<number>(seq).fill(IGNORE_INDEX);
  for (let t = 0; t < Math.min(seq, ids.length - 1); t++) {
    input[t] = ids[t];
    if (t >= firstLabel) labels[t] = ids[t + 1];
  }
  return { ids: input, labels };
}

export function makeBatch(examples: Example[], tok: Tokenizer, seq: number, rng?: Rng): Batch {
  const ids: number[] = [],
    labels: number[] = [];
  for (const e of examples) {
    const enc = encodeExample(e, tok, seq, rng);
    ids.push(...enc.ids);
    labels.push(...enc.labels);
  }
  return {
    tokens: tensor('int64', [examples.length, seq], ids),
    labels: tensor('int64', [examples.length * seq], labels),
    labelCount: labels.filter((l) => l !== IGNORE_INDEX).length,
    examples: examples.length,
  };
}

/** An endless, reproducible stream of shuffled fixed-size batches; its position can be saved. */
export class BatchStream {
  private order: number[] = [];
  private pos = 0;
  epoch = 0;
  private rng: Rng;

  constructor(
    private readonly examples: Example[],
    private readonly tok: Tokenizer,
    readonly batchSize: number,
    readonly seq: number,
    seed: number,
  ) {
    if (examples.length === 0) throw new Error('no examples to batch');
    this.rng = new Rng(seed);
    this.reshuffle();
  }

  private reshuffle(): void {
    this.order = this.rng.shuffle(this.examples.map((_, i) => i));
    this.pos = 0;
  }

  next(): Batch {
    const picked: Example[] = [];
    while (picked.length < this.batchSize) {
      if (this.pos >= this.order.length) {
        this.epoch++;
        this.reshuffle();
      }
      picked.push(this.examples[this.order[this.pos++]]);
    }
    return makeBatch(picked, this.tok, this.seq, this.rng);
  }

  /** Position in the stream, saved with checkpoints so a resumed run sees the same data. */
  state(): { order: number[]; pos: number; epoch: number; rng: number[] } {
    return { order: [...this.order], pos: this.pos, epoch: this.epoch, rng: this.rng.state() };
  }

  restore(s: { order: number[]; pos: number; epoch: number; rng: number[] }): void {
    if (s.order.length !== this.examples.length)
      throw new Error(`saved data position is for ${s.order.length} examples, this silo has ${this.examples.length}`);
    this.order = [...s.order];
    this.pos = s.pos;
    this.epoch = s.epoch;
    this.rng.setState(s.rng);
  }
}

/** Every example once, in order, as fixed-size batches (the last one padded with repeats). */
export function evalBatches(
  examples: Example[],
  tok: Tokenizer,
  batchSize: number,
  seq: number,
  maxBatches?: number | null,
): { batch: Batch; real: number }[] {
  const out: { batch: Batch; real: number }[] = [];
  for (let i = 0; i < examples.length && (!maxBatches || out.length < maxBatches); i += batchSize) {
    const chunk = examples.slice(i, i + batchSize);
    const real = chunk.length;
    while (chunk.length < batchSize) chunk.push(chunk[chunk.length - 1]);
    out.push({ batch: makeBatch(chunk, tok, seq), real });
  }
  return out;
}
