import type { RuntimeOptions } from '../runtime/session.js';
import { tensor } from '../runtime/tensor.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { longRopeSwitch } from './rope.js';
import type { ModelConfig } from './config.js';
import { PartDecoder, type KvStore } from './part-decoder.js';
import type { ParamStore, PeftConfig } from './params.js';

export { buildDecode, buildPrefill } from './decode-graphs.js';

/**
 * Text generation with a KV cache, for a batch of prompts of different lengths: one prefill over the
 * prompts (right padded; causal attention keeps padding from reaching earlier positions), then one
 * decode step per new token, each row at its own position. What runs each step is a `Stepper`: the
 * whole model here (`LocalStepper`), or head and tail on a client around a trunk on a server (split
 * inference, client/split-generate.ts); the sampling loop is the same for both.
 */
export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** Keep the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the most likely tokens up to this total probability (1 = all). */
  topP?: number;
  seed: number;
  eos?: number;
  /** Token sequences that end a row (not included in its output). */
  stop?: number[][];
  /** Each new token of each row, as it is chosen (streaming). */
  onToken?: (row: number, id: number) => void;
}

/** One step of generation for a batch: logits [B, V] for each row's next token. */
export interface Stepper {
  readonly batch: number;
  readonly promptLen: number;
  readonly cacheLen: number;
  readonly vocab: number;
  /** Prompts (each 1..promptLen ids, at most `batch`): logits at each prompt's last position. */
  prefill(prompts: number[][]): Promise<Float32Array>;
  /** The next token of each row at its position (null: the row is done). */
  decode(tokens: number[], positions: (number | null)[]): Promise<Float32Array>;
  /**
   * Refill the cache from whole sequences (at most `cacheLen` ids each) and return the logits at each
   * one's end: for a LongRoPE model crossing its switch length (rope.ts's longRopeSwitch).
   */
  recompute?(sequences: number[][]): Promise<Float32Array>;
  /** The sequence length past which the model's RoPE changes (LongRoPE; rope.ts's longRopeSwitch), if it does. */
  readonly ropeSwitch: number | undefined;
  release(): Promise<void>;
}

/** Right-pad rows to [batch, len] token ids (unused rows are [0]). */
export function paddedTokens(prompts: number[][], batch: number, len: number): { data: number[]; lengths: number[] } {
  const rows = [...prompts, ...Array.from({ length: batch - prompts.length }, () => [0])];
  const data = new Array<number>(batch * len).fill(0);
  rows.forEach((p, r) => p.forEach((id, t) => (data[r * len + t] = id)));
  return { data, lengths: rows.map((p) => p.length) };
}

/** The whole model in this process. */
export class LocalStepper implements Stepper {
  private readonly cache: KvStore;

  constructor(
    private readonly decoder: PartDecoder,
    readonly batch: number,
    readonly promptLen: number,
  ) {
    this.cache = decoder.newCache(batch);
  }

  get cacheLen(): number {
    return this.decoder.cacheLen;
  }
  get vocab(): number {
    return this.decoder.config.vocab_size;
  }

  async prefill(prompts: number[][]): Promise<Float32Array> {
    const { data, lengths } = paddedTokens(prompts, this.batch, this.promptLen);
    return (await this.decoder.prefill(tensor('int64', [this.batch, this.promptLen], data), lengths, this.cache))
      .data as Float32Array;
  }

  async decode(tokens: number[], positions: (number | null)[]): Promise<Float32Array> {
    return (await this.decoder.decode(tensor('int64', [this.batch, 1], tokens), positions, this.cache))
      .data as Float32Array;
  }

  get ropeSwitch(): number | undefined {
    return longRopeSwitch(this.decoder.config);
  }

  async recompute(sequences: number[][]): Promise<Float32Array> {
    const len = Math.max(...sequences.map((s) => s.length));
    const { data, lengths } = paddedTokens(sequences, this.batch, len);
    return (await this.decoder.prefill(tensor('int64', [this.batch, len], data), lengths, this.cache))
      .data as Float32Array;
  }

  release(): Promise<void> {
    return this.decoder.release();
  }
}

export function sampleToken(
  logits: Float32Array,
  o: { temperature: number; topK: number; topP?: number },
  rng: Rng,
): number {
  if (o.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  // Sorting a 152k vocabulary per token costs ~30 ms: only when top-k or top-p need the order.
  const truncate = o.topK > 0 || (o.topP !== undefined && o.topP < 1);
  let ids = Array.from(logits.keys());
  if (truncate) ids.sort((a, b) => logits[b] - logits[a]);
  if (o.topK > 0) ids = ids.slice(0, o.topK);
  let max = -Infinity;
  for (const i of ids) if (logits[i] > max) max = logits[i];
  let w = ids.map((i) => Math.exp((logits[i] - max) / o.temperature));
  if (o.topP !== undefined && o.topP < 1) {
    const total = w.reduce((a, b) => a + b, 0);
    let cum = 0,
      keep = 0;
    while (keep < w.length && cum < o.topP * total) cum += w[keep++];
    ids = ids.slice(0, Math.max(1, keep));
    w = w.slice(0, ids.length);
  }
  let r = rng.uniform() * w.reduce((a, b) => a + b, 0);
  for (let k = 0; k < ids.length; k++) if ((r -= w[k]) <= 0) return ids[k];
  return ids[ids.length - 1];
}

const endsWith = (seq: number[], tail: number[]) =>
  tail.length > 0 && seq.length >= tail.length && tail.every((t, i) => seq[seq.length - tail.length + i] === t);

/** Up to maxNewTokens new ids after each prompt (at most `stepper.batch` prompts, each 1..promptLen ids). */
export async function generateWith(stepper: Stepper, prompts: number[][], o: GenerateOptions): Promise<number[][]> {
  const { batch: B, promptLen: P, cacheLen: M, vocab: V } = stepper;
  if (prompts.length === 0 || prompts.length > B)
    throw new Error(`generation: expected 1..${B} prompts, got ${prompts.length}`);
  for (const p of prompts)
    if (p.length === 0 || p.length > P)
      throw new Error(`generation: a prompt has ${p.length} tokens; expected 1..${P}`);
  const longestPrompt = Math.max(...prompts.map((p) => p.length));
  const sw = stepper.ropeSwitch;
  if (sw !== undefined && !stepper.recompute && longestPrompt <= sw && longestPrompt + o.maxNewTokens > sw)
    throw new UserError(
      `generation: this model's LongRoPE changes past ${sw} positions, where the whole sequence must be run again; split generation cannot do that yet: keep prompt + new tokens within ${sw}, or a prompt longer than ${sw}`,
    );
  const rng = new Rng(o.seed);
  const out: number[][] = prompts.map(() => []);
  const pos = prompts.map((p) => p.length);
  const active = new Set(prompts.map((_, r) => r));
  let logits = await stepper.prefill(prompts);
  const next = new Array<number>(B).fill(0);
  while (active.size > 0) {
    for (const r of [...active]) {
      const id = sampleToken(logits.subarray(r * V, (r + 1) * V), o, rng);
      if (id === o.eos) {
        active.delete(r);
        continue;
      }
      out[r].push(id);
      next[r] = id;
      o.onToken?.(r, id);
      const stop = o.stop?.find((s) => endsWith(out[r], s));
      if (stop) {
        out[r].splice(out[r].length - stop.length);
        active.delete(r);
        continue;
      }
      if (out[r].length >= o.maxNewTokens || pos[r] >= M) active.delete(r);
    }
    if (active.size === 0) break;
    // LongRoPE: the step a sequence passes the switch length, the whole cache is made again (as transformers does).
    const longest = Math.max(...[...active].map((r) => pos[r]));
    if (longest === stepper.ropeSwitch && stepper.recompute)
      logits = await stepper.recompute(prompts.map((p, r) => [...p, ...out[r]]));
    else
      logits = await stepper.decode(
        next,
        Array.from({ length: B }, (_, r) => (active.has(r) ? pos[r] : null)),
      );
    for (const r of active) pos[r]++;
  }
  return out;
}

/**
 * Prefill + decode programs of the whole model for `batch` prompts of up to `promptLen` tokens and
 * `maxNewTokens` new ones each. Compiled once; `run` as many batches as needed (evaluation reuses one).
 */
export class BatchGenerator {
  private constructor(private readonly stepper: LocalStepper) {}

  get batch(): number {
    return this.stepper.batch;
  }
  get promptLen(): number {
    return this.stepper.promptLen;
  }

  static async create(
    c: ModelConfig,
    peft: PeftConfig,
    store: ParamStore,
    o: { batch: number; promptLen: number; maxNewTokens: number },
    runtime: RuntimeOptions = {},
  ): Promise<BatchGenerator> {
    const cacheLen = Math.min(c.max_position_embeddings, o.promptLen + o.maxNewTokens);
    const decoder = new PartDecoder(c, peft, store, 'full', { head_blocks: 0, tail_blocks: 0 }, cacheLen, runtime);
    return new BatchGenerator(new LocalStepper(decoder, o.batch, o.promptLen));
  }

  run(prompts: number[][], o: GenerateOptions): Promise<number[][]> {
    return generateWith(this.stepper, prompts, o);
  }

  release(): Promise<void> {
    return this.stepper.release();
  }
}

/** Generate up to maxNewTokens after `prompt` (token ids); returns only the new ids. */
export async function generate(
  c: ModelConfig,
  peft: PeftConfig,
  store: ParamStore,
  prompt: number[],
  o: GenerateOptions,
  runtime: RuntimeOptions = {},
): Promise<number[]> {
  const g = await BatchGenerator.create(
    c,
    peft,
    store,
    { batch: 1, promptLen: prompt.length, maxNewTokens: o.maxNewTokens },
    runtime,
  );
  try {
    return (await g.run([prompt], o))[0];
  } finally {
    await g.release();
  }
}
