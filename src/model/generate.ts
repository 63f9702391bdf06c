import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { CompiledGraph, type RuntimeOptions } from '../runtime/session.js';
import { tensor, type TensorData } from '../runtime/tensor.js';
import { Rng } from '../util/rng.js';
import { headDim, type ModelConfig } from './config.js';
import { positionConstants, type BlockContext, type KvCache } from './llama.js';
import type { ParamStore, PeftConfig } from './params.js';
import { familyOf } from './families/registry.js';
import { graphWeights } from './graph-weights.js';

/**
 * Text generation with a KV cache. Two programs with static shapes: `prefill` runs the prompt
 * [1, P] and returns the last logits plus every layer's keys/values; `decode` runs one token
 * against a fixed-size cache [1, Hkv, M, Dh] (positions past the current one masked out) and
 * returns the logits and the new token's keys/values, which the loop writes into the cache.
 */
export interface GenerateOptions {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
  eos?: number;
}

/** Every weight frozen into the graph: generation trains nothing. */
function context(g: Graph, c: ModelConfig, peft: PeftConfig, store: ParamStore, pos: { cos: Value; sin: Value; mask: Value }): BlockContext {
  const { weight, has } = graphWeights(g, store, new Set(store.keys()), 'the model');
  return { config: c, peft, weight, has, ...pos };
}

/** The whole decoder, then the LM head on the last position only: [1, V]. */
function lastLogits(ctx: BlockContext, input: Value, cache: (layer: number) => KvCache): Value {
  const family = familyOf(ctx.config.model_type);
  const h = family.decode(ctx, input, { embeds: true, layers: [0, ctx.config.num_hidden_layers] }, cache);
  const [, s] = h.shape;
  return family.lmHead(ctx, op.slice(h, [s - 1], [s], [1]));
}

export function buildPrefill(c: ModelConfig, peft: PeftConfig, store: ParamStore, promptLen: number): Graph {
  const g = new Graph('prefill');
  const tokens = g.input('tokens', 'int64', [1, promptLen]);
  const prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const ctx = context(g, c, peft, store, positionConstants(g, c, promptLen, prefix));
  const cache: KvCache = { emit: (l, k, v) => { g.output(k, `key_${l}`); g.output(v, `value_${l}`); } };
  g.output(lastLogits(ctx, tokens, () => cache), 'logits');
  return g;
}

export function buildDecode(c: ModelConfig, peft: PeftConfig, store: ParamStore, cacheLen: number): Graph {
  const g = new Graph('decode');
  const token = g.input('token', 'int64', [1, 1]);
  const half = headDim(c) / 2;
  const prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const pos = { cos: g.input('cos', 'float32', [1, half]), sin: g.input('sin', 'float32', [1, half]), mask: g.input('mask', 'float32', [1, prefix + cacheLen + 1]) };
  const ctx = context(g, c, peft, store, pos);
  const past = Array.from({ length: c.num_hidden_layers }, (_, l) => ({
    key: g.input(`past_key_${l}`, 'float32', [1, c.num_key_value_heads, cacheLen, headDim(c)]),
    value: g.input(`past_value_${l}`, 'float32', [1, c.num_key_value_heads, cacheLen, headDim(c)]),
  }));
  const emit = (layer: number, k: Value, v: Value) => { g.output(k, `key_${layer}`); g.output(v, `value_${layer}`); };
  g.output(lastLogits(ctx, token, (l) => ({ past: past[l], emit })), 'logits');
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

/** Generate up to maxNewTokens after `prompt` (token ids); returns only the new ids. */
export async function generate(c: ModelConfig, peft: PeftConfig, store: ParamStore, prompt: number[], o: GenerateOptions, runtime: RuntimeOptions = {}): Promise<number[]> {
  const cacheLen = Math.min(c.max_position_embeddings, prompt.length + o.maxNewTokens);
  const prefill = await CompiledGraph.create(buildPrefill(c, peft, store, prompt.length), runtime);
  const decode = await CompiledGraph.create(buildDecode(c, peft, store, cacheLen), runtime);
  const L = c.num_hidden_layers, hkv = c.num_key_value_heads, dh = headDim(c), half = dh / 2;
  const prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const keys = Array.from({ length: L }, () => new Float32Array(hkv * cacheLen * dh));
  const values = Array.from({ length: L }, () => new Float32Array(hkv * cacheLen * dh));
  const store_ = (cacheArr: Float32Array, fresh: Float32Array, at: number, n: number) => {
    for (let hh = 0; hh < hkv; hh++) cacheArr.set(fresh.subarray(hh * n * dh, (hh + 1) * n * dh), (hh * cacheLen + at) * dh);
  };
  const first = await prefill.run({ tokens: tensor('int64', [1, prompt.length], prompt) });
  for (let l = 0; l < L; l++) {
    store_(keys[l], first[`key_${l}`].data as Float32Array, 0, prompt.length);
    store_(values[l], first[`value_${l}`].data as Float32Array, 0, prompt.length);
  }
  const rng = new Rng(o.seed);
  const out: number[] = [];
  let logits = first.logits.data as Float32Array;
  for (let p = prompt.length; out.length < o.maxNewTokens; p++) {
    const next = sampleToken(logits, o, rng);
    if (next === o.eos) break;
    out.push(next);
    if (p >= cacheLen) break;
    const cos = new Float32Array(half), sin = new Float32Array(half);
    for (let i = 0; i < half; i++) { const a = p / Math.pow(c.rope_theta, (2 * i) / dh); cos[i] = Math.cos(a); sin[i] = Math.sin(a); }
    const mask = new Float32Array(prefix + cacheLen + 1).fill(-1e9);
    mask.fill(0, 0, prefix + p);
    mask[prefix + cacheLen] = 0; // the new token sees itself
    const feeds: Record<string, TensorData> = {
      token: tensor('int64', [1, 1], [next]), cos: tensor('float32', [1, half], cos), sin: tensor('float32', [1, half], sin), mask: tensor('float32', [1, mask.length], mask),
    };
    for (let l = 0; l < L; l++) {
      feeds[`past_key_${l}`] = tensor('float32', [1, hkv, cacheLen, dh], keys[l]);
      feeds[`past_value_${l}`] = tensor('float32', [1, hkv, cacheLen, dh], values[l]);
    }
    const r = await decode.run(feeds);
    for (let l = 0; l < L; l++) {
      store_(keys[l], r[`key_${l}`].data as Float32Array, p, 1);
      store_(values[l], r[`value_${l}`].data as Float32Array, p, 1);
    }
    logits = r.logits.data as Float32Array;
  }
  await prefill.release();
  await decode.release();
  return out;
}
