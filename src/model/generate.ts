import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { CompiledGraph, type RuntimeOptions } from '../runtime/session.js';
import { tensor, type TensorData } from '../runtime/tensor.js';
import { Rng } from '../util/rng.js';
import { headDim, type ModelConfig } from './config.js';
import { logitsOf, positionConstants, type BlockContext, type KvCache } from './llama.js';
import type { ParamStore, PeftConfig } from './params.js';
import { familyOf } from './families/registry.js';
import { graphWeights, type FrozenWeights } from './graph-weights.js';

/**
 * Text generation with a KV cache, for a batch of prompts of different lengths. Two programs with
 * static shapes, compiled once and reused for every batch: `prefill` runs the prompts [B, P] (right
 * padded; causal attention keeps padding from reaching earlier positions) and returns each row's
 * logits at its own last prompt token (`select`, one-hot [B, 1, P]) plus every layer's keys/values;
 * `decode` runs one token per row against a fixed-size cache [B, Hkv, M, Dh] with per-row
 * positions and masks (slots past a row's position masked out) and returns the logits and the new
 * token's keys/values, which the loop writes into each row's slot.
 */
export interface GenerateOptions {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
  eos?: number;
}

/** Every weight frozen: generation trains nothing (inputs fed from the store, or baked in for an export). */
function context(g: Graph, c: ModelConfig, peft: PeftConfig, store: ParamStore, pos: { cos: Value; sin: Value; mask: Value }, frozen: FrozenWeights): BlockContext {
  const { weight, has } = graphWeights(g, store, new Set(store.keys()), 'the model', [], frozen);
  return { config: c, peft, weight, has, ...pos };
}

/** The whole decoder, then the LM head on one position per row (`pick` maps [B, S, D] to [B, 1, D]). */
function pickedLogits(ctx: BlockContext, input: Value, cache: (layer: number) => KvCache, pick: (h: Value) => Value): Value {
  const family = familyOf(ctx.config.model_type);
  const h = family.decode(ctx, input, { embeds: true, layers: [0, ctx.config.num_hidden_layers] }, cache);
  return logitsOf(family.lmHead(ctx, pick(h)));
}

export function buildPrefill(c: ModelConfig, peft: PeftConfig, store: ParamStore, promptLen: number, batch = 1, frozen: FrozenWeights = 'input'): Graph {
  const g = new Graph('prefill');
  const tokens = g.input('tokens', 'int64', [batch, promptLen]);
  const select = g.input('select', 'float32', [batch, 1, promptLen]);
  const prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const ctx = context(g, c, peft, store, positionConstants(g, c, promptLen, prefix), frozen);
  const cache: KvCache = { emit: (l, k, v) => { g.output(k, `key_${l}`); g.output(v, `value_${l}`); } };
  g.output(pickedLogits(ctx, tokens, () => cache, (h) => op.matmul(select, h)), 'logits');
  return g;
}

/**
 * The decode step's per-row inputs (rotary tables, mask): per-row positions broadcast over heads;
 * one sequence keeps the exported decoder's documented [1, n] layout (export-onnx.ts).
 */
function rowShape(batch: number, n: number): number[] {
  return batch === 1 ? [1, n] : [batch, 1, 1, n];
}

export function buildDecode(c: ModelConfig, peft: PeftConfig, store: ParamStore, cacheLen: number, batch = 1, frozen: FrozenWeights = 'input'): Graph {
  const g = new Graph('decode');
  const token = g.input('token', 'int64', [batch, 1]);
  const half = headDim(c) / 2;
  const prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const pos = { cos: g.input('cos', 'float32', rowShape(batch, half)), sin: g.input('sin', 'float32', rowShape(batch, half)), mask: g.input('mask', 'float32', rowShape(batch, prefix + cacheLen + 1)) };
  const ctx = context(g, c, peft, store, pos, frozen);
  const past = Array.from({ length: c.num_hidden_layers }, (_, l) => ({
    key: g.input(`past_key_${l}`, 'float32', [batch, c.num_key_value_heads, cacheLen, headDim(c)]),
    value: g.input(`past_value_${l}`, 'float32', [batch, c.num_key_value_heads, cacheLen, headDim(c)]),
  }));
  const emit = (layer: number, k: Value, v: Value) => { g.output(k, `key_${layer}`); g.output(v, `value_${layer}`); };
  g.output(pickedLogits(ctx, token, (l) => ({ past: past[l], emit }), (h) => h), 'logits');
  return g;
}

export function sampleToken(logits: Float32Array, o: { temperature: number; topK: number }, rng: Rng): number {
  if (o.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let ids = Array.from(logits.keys());
  if (o.topK > 0) ids = ids.sort((a, b) => logits[b] - logits[a]).slice(0, o.topK);
  const max = Math.max(...ids.map((i) => logits[i]));
  const w = ids.map((i) => Math.exp((logits[i] - max) / o.temperature));
  let r = rng.uniform() * w.reduce((a, b) => a + b, 0);
  for (let k = 0; k < ids.length; k++) if ((r -= w[k]) <= 0) return ids[k];
  return ids[ids.length - 1];
}

/**
 * Prefill + decode programs for `batch` prompts of up to `promptLen` tokens and `maxNewTokens` new
 * ones each. Compiled once; `run` as many batches as needed (evaluation reuses one generator).
 */
export class BatchGenerator {
  private constructor(
    private readonly c: ModelConfig,
    private readonly prefixLen: number,
    readonly batch: number,
    readonly promptLen: number,
    readonly cacheLen: number,
    private readonly prefill: CompiledGraph,
    private readonly decode: CompiledGraph,
    private readonly store: ParamStore,
  ) {}

  /** The step's own feeds plus every weight the program reads, from the store. */
  private withWeights(session: CompiledGraph, feeds: Record<string, TensorData>): Record<string, TensorData> {
    for (const spec of session.inputs) {
      const p = feeds[spec.name] ? undefined : this.store.get(spec.name);
      if (p) feeds[spec.name] = { dtype: 'float32', shape: p.shape, data: p.data };
    }
    return feeds;
  }

  static async create(c: ModelConfig, peft: PeftConfig, store: ParamStore, o: { batch: number; promptLen: number; maxNewTokens: number }, runtime: RuntimeOptions = {}): Promise<BatchGenerator> {
    const cacheLen = Math.min(c.max_position_embeddings, o.promptLen + o.maxNewTokens);
    const prefill = await CompiledGraph.create(buildPrefill(c, peft, store, o.promptLen, o.batch), runtime);
    const decode = await CompiledGraph.create(buildDecode(c, peft, store, cacheLen, o.batch), runtime);
    return new BatchGenerator(c, peft.method === 'prefix' ? peft.prefix.length : 0, o.batch, o.promptLen, cacheLen, prefill, decode, store);
  }

  /** Up to maxNewTokens new ids after each prompt (at most `batch` prompts, each 1..promptLen ids). */
  async run(prompts: number[][], o: GenerateOptions): Promise<number[][]> {
    const { c, batch: B, promptLen: P, cacheLen: M } = this;
    if (prompts.length === 0 || prompts.length > B) throw new Error(`BatchGenerator: expected 1..${B} prompts, got ${prompts.length}`);
    for (const p of prompts) if (p.length === 0 || p.length > P) throw new Error(`BatchGenerator: a prompt has ${p.length} tokens; expected 1..${P}`);
    const L = c.num_hidden_layers, hkv = c.num_key_value_heads, dh = headDim(c), half = dh / 2, width = this.prefixLen + M + 1;
    const rows = [...prompts, ...Array.from({ length: B - prompts.length }, () => [0])];
    const tokens = new Array<number>(B * P).fill(0);
    const select = new Float32Array(B * P);
    rows.forEach((p, r) => { p.forEach((id, t) => (tokens[r * P + t] = id)); select[r * P + p.length - 1] = 1; });
    const first = await this.prefill.run(this.withWeights(this.prefill, { tokens: tensor('int64', [B, P], tokens), select: tensor('float32', [B, 1, P], select) }));
    const keys = Array.from({ length: L }, () => new Float32Array(B * hkv * M * dh));
    const values = Array.from({ length: L }, () => new Float32Array(B * hkv * M * dh));
    // Write `n` positions of a [B, Hkv, n, Dh] output into the cache from slot `at[r]` (row r).
    const put = (cache: Float32Array, fresh: Float32Array, n: number, at: (r: number) => number, rowsToWrite: number[]) => {
      for (const r of rowsToWrite) for (let hh = 0; hh < hkv; hh++) {
        const src = (r * hkv + hh) * n * dh;
        cache.set(fresh.subarray(src, src + Math.min(n, M - at(r)) * dh), ((r * hkv + hh) * M + at(r)) * dh);
      }
    };
    const all = rows.map((_, r) => r);
    for (let l = 0; l < L; l++) {
      put(keys[l], first[`key_${l}`].data as Float32Array, Math.min(P, M), () => 0, all);
      put(values[l], first[`value_${l}`].data as Float32Array, Math.min(P, M), () => 0, all);
    }
    const V = c.vocab_size;
    const rng = new Rng(o.seed);
    const out: number[][] = prompts.map(() => []);
    const pos = prompts.map((p) => p.length);
    const active = new Set(prompts.map((_, r) => r));
    let logits = first.logits.data as Float32Array;
    const next = new Array<number>(B).fill(0);
    while (active.size > 0) {
      for (const r of [...active]) {
        const id = sampleToken(logits.subarray(r * V, (r + 1) * V), o, rng);
        if (id === o.eos) { active.delete(r); continue; }
        out[r].push(id);
        next[r] = id;
        if (out[r].length >= o.maxNewTokens || pos[r] >= M) active.delete(r);
      }
      if (active.size === 0) break;
      const cos = new Float32Array(B * half), sin = new Float32Array(B * half);
      const mask = new Float32Array(B * width).fill(-1e9);
      for (const r of active) {
        for (let i = 0; i < half; i++) { const a = pos[r] / Math.pow(c.rope_theta, (2 * i) / dh); cos[r * half + i] = Math.cos(a); sin[r * half + i] = Math.sin(a); }
        mask.fill(0, r * width, r * width + this.prefixLen + pos[r]);
        mask[r * width + width - 1] = 0; // the new token sees itself
      }
      const feeds: Record<string, TensorData> = {
        token: tensor('int64', [B, 1], next), cos: tensor('float32', rowShape(B, half), cos), sin: tensor('float32', rowShape(B, half), sin), mask: tensor('float32', rowShape(B, width), mask),
      };
      for (let l = 0; l < L; l++) {
        feeds[`past_key_${l}`] = tensor('float32', [B, hkv, M, dh], keys[l]);
        feeds[`past_value_${l}`] = tensor('float32', [B, hkv, M, dh], values[l]);
      }
      const r = await this.decode.run(this.withWeights(this.decode, feeds));
      const live = [...active];
      for (let l = 0; l < L; l++) {
        put(keys[l], r[`key_${l}`].data as Float32Array, 1, (row) => pos[row], live);
        put(values[l], r[`value_${l}`].data as Float32Array, 1, (row) => pos[row], live);
      }
      for (const row of live) pos[row]++;
      logits = r.logits.data as Float32Array;
    }
    return out;
  }

  async release(): Promise<void> {
    await this.prefill.release();
    await this.decode.release();
  }
}

/** Generate up to maxNewTokens after `prompt` (token ids); returns only the new ids. */
export async function generate(c: ModelConfig, peft: PeftConfig, store: ParamStore, prompt: number[], o: GenerateOptions, runtime: RuntimeOptions = {}): Promise<number[]> {
  const g = await BatchGenerator.create(c, peft, store, { batch: 1, promptLen: prompt.length, maxNewTokens: o.maxNewTokens }, runtime);
  try {
    return (await g.run([prompt], o))[0];
  } finally {
    await g.release();
  }
}
