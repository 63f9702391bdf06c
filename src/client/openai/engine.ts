import { randomInt } from 'node:crypto';
import type { Tokenizer } from '../../data/tokenizer.js';
import { generateWith, LocalStepper, type Stepper } from '../../model/generate.js';
import { PartDecoder } from '../../model/part-decoder.js';
import type { SplitPoints } from '../../model/partition.js';
import type { RuntimeOptions } from '../../runtime/session.js';
import type { ModelFolder } from '../../training/model-folder.js';
import { SplitStepper } from '../split-generate.js';
import { TextStream } from './text-stream.js';

/**
 * What the endpoint generates with: split (head and tail here, the trunk on a `flglm server
 * --serve`, one session per request, so the trunk batches concurrent requests' decode steps) or
 * local (a merged / Hugging Face folder, unsplit). Either way the compiled programs are made once
 * and shared by all requests, each with its own KV caches: the first request of a prompt length
 * bucket compiles its prefill, later ones reuse it.
 */
export interface EngineRequest {
  /** Token ids (BOS included where wanted). */
  prompt: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number | null;
  stop: string[];
}

export interface EngineResult {
  text: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: 'stop' | 'length';
  /** Seconds from the start to the first new token (null: none came). */
  firstTokenS: number | null;
  seconds: number;
}

export type Target = { target: string; kit: string | null; serverName: string };

/** Prefill programs per bucket of this many positions (padding is exact: causal attention never reads it). */
const PROMPT_BUCKET = 16;

class Halt extends Error {}

export class Engine {
  private readonly parts = new Map<string, { head: PartDecoder; tail: PartDecoder }>();
  private readonly local: PartDecoder | null;

  /** `context`: positions per sequence (prompt + new tokens) the shared caches hold. */
  constructor(
    readonly model: ModelFolder,
    readonly context: number,
    private readonly split: Target | null,
    private readonly runtime: RuntimeOptions = {},
  ) {
    this.local = split
      ? null
      : new PartDecoder(model.config, model.peft, model.store, 'full', { head_blocks: 0, tail_blocks: 0 }, context, {
          spinning: false,
          ...runtime,
        });
  }

  get tokenizer(): Tokenizer {
    return this.model.tokenizer;
  }

  private partsFor = (split: SplitPoints) => {
    const key = `${split.head_blocks}/${split.tail_blocks}`;
    let p = this.parts.get(key);
    if (!p) {
      const { config: c, peft, store } = this.model;
      // No spinning: between its parts' runs the client waits on the trunk (split-generate.ts).
      const rt = { spinning: false, ...this.runtime };
      p = {
        head: new PartDecoder(c, peft, store, 'head', split, this.context, rt),
        tail: new PartDecoder(c, peft, store, 'tail', split, this.context, rt),
      };
      this.parts.set(key, p);
    }
    return p;
  };

  /** A stepper for one request, and whether releasing it is the request's (a local one shares the decoder). */
  private stepper(promptLen: number, maxNewTokens: number): { stepper: Stepper; owned: boolean } {
    // The smallest bucket that holds the prompt and still leaves room for the new tokens.
    const bucket = Math.ceil(promptLen / PROMPT_BUCKET) * PROMPT_BUCKET;
    const len = Math.max(promptLen, Math.min(bucket, this.context - maxNewTokens));
    if (!this.split) return { stepper: new LocalStepper(this.local!, 1, len), owned: false };
    const stepper = new SplitStepper({
      ...this.split,
      config: this.model.config,
      peft: this.model.peft,
      store: this.model.store,
      batch: 1,
      promptLen: len,
      maxNewTokens,
      parts: this.partsFor,
    });
    return { stepper, owned: true };
  }

  /** Generate for one request; `onText` gets the answer's text as it becomes certain; `signal` cancels. */
  async run(r: EngineRequest, onText: (delta: string) => void, signal: AbortSignal): Promise<EngineResult> {
    const t0 = performance.now();
    const stream = new TextStream(this.tokenizer, r.stop);
    let firstTokenS: number | null = null;
    let finishReason: 'stop' | 'length' = 'length';
    const made = this.stepper(r.prompt.length, r.maxTokens);
    const stepper = cancellable(made.stepper, signal);
    try {
      const [out] = await generateWith(stepper, [r.prompt], {
        maxNewTokens: r.maxTokens,
        temperature: r.temperature,
        topK: 0,
        topP: r.topP,
        seed: r.seed ?? randomInt(2 ** 32),
        eos: this.tokenizer.eos,
        onToken: (_row, id) => {
          firstTokenS ??= (performance.now() - t0) / 1000;
          const delta = stream.push(id);
          if (delta) onText(delta);
          if (stream.stopped) throw new Halt();
        },
      });
      if (out.length < r.maxTokens) finishReason = 'stop'; // the model's end-of-sequence token
    } catch (e) {
      if (!(e instanceof Halt)) throw e;
      finishReason = 'stop';
    } finally {
      if (made.owned) await stepper.release();
    }
    const rest = stream.flush();
    if (rest) onText(rest);
    return {
      text: stream.answer,
      promptTokens: r.prompt.length,
      completionTokens: stream.tokens,
      finishReason,
      firstTokenS,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  async close(): Promise<void> {
    for (const p of this.parts.values()) await Promise.all([p.head.release(), p.tail.release()]);
    this.parts.clear();
    await this.local?.release();
  }
}

export class CancelledError extends Error {}

/** The stepper, refusing its next step once `signal` fires (the HTTP client went away): the caller then releases it. */
function cancellable(s: Stepper, signal: AbortSignal): Stepper {
  const check = () => {
    if (signal.aborted) throw new CancelledError('the client went away');
  };
  return {
    get batch() {
      return s.batch;
    },
    get promptLen() {
      return s.promptLen;
    },
    get cacheLen() {
      return s.cacheLen;
    },
    get vocab() {
      return s.vocab;
    },
    get ropeSwitch() {
      return s.ropeSwitch;
    },
    prefill: (prompts) => (check(), s.prefill(prompts)),
    decode: (tokens, positions) => (check(), s.decode(tokens, positions)),
    recompute: s.recompute && ((sequences) => (check(), s.recompute!(sequences))),
    release: () => s.release(),
  };
}
