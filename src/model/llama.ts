import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { headDim, type ModelConfig } from './config.js';
import { LINEAR_NAMES, layerPrefix, type LoraTarget, type PeftConfig } from './weights.js';

// The LLaMA-style decoder, written as graph-building functions in the order data meets them:
// embedding -> [RMSNorm -> attention (RoPE, GQA, causal) -> residual -> RMSNorm -> SwiGLU MLP ->
// residual] x L -> RMSNorm -> LM head. Families (src/model/families) assemble these pieces.

/** The graph value of a parameter (a graph input, fed from the store; see graph-weights.ts). */
export type WeightLookup = (name: string) => Value;

export interface BlockContext {
  config: ModelConfig;
  peft: PeftConfig;
  weight: WeightLookup;
  has: (name: string) => boolean;
  /** Rotary tables [S, headDim/2] and the additive causal mask [S, P+S]. */
  cos: Value;
  sin: Value;
  mask: Value;
  /** LoRA dropout mask for a layer's target (0 or 1/(1-p) per element), during training only. */
  loraDropout?: (layer: number, target: LoraTarget, like: Value) => Value;
}

export function embed(weight: WeightLookup, tokens: Value): Value {
  return op.gather(weight('model.embed_tokens.weight'), tokens, 0);
}

export function rmsNorm(x: Value, w: Value, eps: number): Value {
  const meanSquare = op.reduceMean(op.mul(x, x), [-1], true);
  return op.mul(op.mul(x, op.reciprocal(op.sqrt(op.add(meanSquare, op.scalarLike(x, eps))))), w);
}

/** x @ W (+ bias) (+ LoRA: (x @ A) @ B * alpha / rank). */
function linear(ctx: BlockContext, layer: number, target: LoraTarget, x: Value): Value {
  const name = `${layerPrefix(layer)}.${LINEAR_NAMES[target]}`;
  let y = op.matmul(x, ctx.weight(`${name}.weight`));
  if (ctx.has(`${name}.bias`)) y = op.add(y, ctx.weight(`${name}.bias`));
  if (ctx.peft.method === 'lora' && ctx.peft.lora.targets.includes(target)) {
    const xin = ctx.loraDropout ? op.mul(x, ctx.loraDropout(layer, target, x)) : x;
    const low = op.matmul(op.matmul(xin, ctx.weight(`${name}.lora_A`)), ctx.weight(`${name}.lora_B`));
    y = op.add(y, op.mul(low, op.scalarLike(x, ctx.peft.lora.alpha / ctx.peft.lora.rank)));
  }
  return y;
}

/** Rotary embedding on [B, H, S, Dh] with HF's rotate-half convention. */
export function rotary(x: Value, cos: Value, sin: Value): Value {
  const half = x.shape[3] / 2;
  const [x1, x2] = op.split(x, [half, half], 3);
  return op.concat([op.sub(op.mul(x1, cos), op.mul(x2, sin)), op.add(op.mul(x2, cos), op.mul(x1, sin))], 3);
}

function heads(x: Value, n: number, dh: number): Value {
  const [b, s] = x.shape;
  return op.transpose(op.reshape(x, [b, s, n, dh]), [0, 2, 1, 3]);
}

/** Repeat KV heads for grouped-query attention: [B, Hkv, T, Dh] -> [B, H, T, Dh]. */
function repeatKv(x: Value, groups: number): Value {
  if (groups === 1) return x;
  const [b, hkv, t, dh] = x.shape;
  return op.reshape(op.expand(op.unsqueeze(x, [2]), [b, hkv, groups, t, dh]), [b, hkv * groups, t, dh]);
}

/**
 * KV cache hooks for generation: `emit` receives this step's keys/values ([B, Hkv, S, Dh], keys
 * after RoPE); `past` holds earlier ones, attended to before the current tokens.
 */
export interface KvCache {
  past?: { key: Value; value: Value };
  emit(layer: number, key: Value, value: Value): void;
}

export function attention(ctx: BlockContext, layer: number, x: Value, cache?: KvCache): Value {
  const c = ctx.config;
  const [b, s] = x.shape;
  const dh = headDim(c),
    h = c.num_attention_heads,
    hkv = c.num_key_value_heads;
  // Qwen3-style per-head RMSNorm of queries and keys before RoPE, where the model has those weights.
  const qkNorm = (t: Value, which: 'q' | 'k') => {
    const name = `${layerPrefix(layer)}.self_attn.${which}_norm.weight`;
    return ctx.has(name) ? rmsNorm(t, ctx.weight(name), c.rms_norm_eps) : t;
  };
  const q = rotary(qkNorm(heads(linear(ctx, layer, 'q', x), h, dh), 'q'), ctx.cos, ctx.sin);
  let k = rotary(qkNorm(heads(linear(ctx, layer, 'k', x), hkv, dh), 'k'), ctx.cos, ctx.sin);
  let v = heads(linear(ctx, layer, 'v', x), hkv, dh);
  cache?.emit(layer, k, v);
  // P-Tuning v2: trainable per-layer keys/values every query attends to.
  const p = ctx.peft.prefix.length;
  const prefix = (kind: string) =>
    op.expand(op.unsqueeze(ctx.weight(`${layerPrefix(layer)}.prefix.${kind}`), [0]), [b, hkv, p, dh]);
  const segments = [
    ...(ctx.peft.method === 'prefix' ? [{ key: prefix('key'), value: prefix('value') }] : []),
    ...(cache?.past ? [cache.past] : []),
    { key: k, value: v },
  ];
  if (cache?.past) return linear(ctx, layer, 'o', groupedAttention(q, segments, ctx.mask, h, hkv, dh));
  if (segments.length > 1) {
    k = op.concat(
      segments.map((x) => x.key),
      2,
    );
    v = op.concat(
      segments.map((x) => x.value),
      2,
    );
  }
  k = repeatKv(k, h / hkv);
  v = repeatKv(v, h / hkv);
  const scores = op.add(
    op.mul(op.matmul(q, op.transpose(k, [0, 1, 3, 2])), op.scalarLike(x, 1 / Math.sqrt(dh))),
    ctx.mask,
  );
  const context = op.matmul(op.softmax(scores, -1), v);
  const merged = op.reshape(op.transpose(context, [0, 2, 1, 3]), [b, s, h * dh]);
  return linear(ctx, layer, 'o', merged);
}

/**
 * Attention of a decode step against its cache, without copying the cache: the queries of the
 * g = H / Hkv heads that share a KV head are one matrix against that head's keys ([B, Hkv, g*S, Dh]
 * x [B, Hkv, Dh, T]), and each segment of keys/values (prefix, past, this step's) is attended to
 * where it lies. Concatenating past and new keys and repeating them per query head copied every
 * row's whole cache several times per layer and step: at 16 rows of the 6-block trunk of
 * flglm-small-base that was most of a decode batch (split-generate benchmark). Same arithmetic
 * as the path below, in another order: the scores of one row are the same dot products.
 */
function groupedAttention(
  q: Value,
  segments: { key: Value; value: Value }[],
  mask: Value,
  h: number,
  hkv: number,
  dh: number,
): Value {
  const [b, , s] = q.shape;
  const g = h / hkv;
  const qg = op.reshape(q, [b, hkv, g * s, dh]);
  const scores = op.concat(
    segments.map((x) => op.matmul(qg, op.transpose(x.key, [0, 1, 3, 2]))),
    3,
  );
  const t = scores.shape[3];
  const masked = op.add(op.mul(op.reshape(scores, [b, h, s, t]), op.scalarLike(q, 1 / Math.sqrt(dh))), mask);
  const probs = op.reshape(op.softmax(masked, -1), [b, hkv, g * s, t]);
  const lengths = segments.map((x) => x.key.shape[2]);
  const parts = lengths.length > 1 ? op.split(probs, lengths, 3) : [probs];
  const context = parts.map((pr, i) => op.matmul(pr, segments[i].value)).reduce((acc, x) => op.add(acc, x));
  return op.reshape(op.transpose(op.reshape(context, [b, h, s, dh]), [0, 2, 1, 3]), [b, s, h * dh]);
}

export function swiGlu(ctx: BlockContext, layer: number, x: Value): Value {
  const gate = linear(ctx, layer, 'gate', x);
  const silu = op.mul(gate, op.sigmoid(gate));
  return linear(ctx, layer, 'down', op.mul(silu, linear(ctx, layer, 'up', x)));
}

export function block(ctx: BlockContext, layer: number, x: Value, cache?: KvCache): Value {
  const p = layerPrefix(layer);
  const eps = ctx.config.rms_norm_eps;
  const h = op.add(x, attention(ctx, layer, rmsNorm(x, ctx.weight(`${p}.input_layernorm.weight`), eps), cache));
  return op.add(h, swiGlu(ctx, layer, rmsNorm(h, ctx.weight(`${p}.post_attention_layernorm.weight`), eps)));
}

/**
 * The LM head as its two pieces: the final-normed rows [B*S, D] and the projection to the vocabulary.
 * With tied embeddings the projection is the embedding table itself, [V, D], used transposed by a
 * Gemm (transB): a Transpose node would materialise a second copy of the table at every run.
 */
export interface LmHead {
  hidden: Value;
  weight: Value;
  /** The weight is [V, D] (tied embeddings) rather than [D, V]. */
  vocabMajor: boolean;
}

/** Final norm and LM head: [B, S, D] -> the normed rows and the projection (see `logitsOf`). */
export function lmHead(ctx: BlockContext, x: Value): LmHead {
  const c = ctx.config;
  const [b, s, d] = x.shape;
  const hidden = op.reshape(rmsNorm(x, ctx.weight('model.norm.weight'), c.rms_norm_eps), [b * s, d]);
  return c.tie_word_embeddings
    ? { hidden, weight: ctx.weight('model.embed_tokens.weight'), vocabMajor: true }
    : { hidden, weight: ctx.weight('lm_head.weight'), vocabMajor: false };
}

/** Logits [rows, V] of some rows of the LM head's input (all of them by default). */
export function logitsOf(head: LmHead, rows: Value = head.hidden): Value {
  return op.gemm(rows, head.weight, null, { transB: head.vocabMajor });
}

/** Rotary cos/sin of `position` into row `row` of [rows, Dh/2] tables (training constants and decode feeds alike). */
export function writeRotaryRow(
  c: ModelConfig,
  position: number,
  cos: Float32Array,
  sin: Float32Array,
  row: number,
): void {
  const dh = headDim(c),
    half = dh / 2;
  for (let i = 0; i < half; i++) {
    const angle = position / Math.pow(c.rope_theta, (2 * i) / dh);
    cos[row * half + i] = Math.cos(angle);
    sin[row * half + i] = Math.sin(angle);
  }
}

/** Rotary cos/sin tables [S, Dh/2] and the causal mask [S, P+S] (prefix positions always visible). */
export function positionConstants(
  g: Graph,
  c: ModelConfig,
  seq: number,
  prefixLen: number,
): { cos: Value; sin: Value; mask: Value } {
  const half = headDim(c) / 2;
  const cos = new Float32Array(seq * half),
    sin = new Float32Array(seq * half);
  for (let t = 0; t < seq; t++) writeRotaryRow(c, t, cos, sin, t);
  const width = prefixLen + seq;
  const mask = new Float32Array(seq * width);
  for (let t = 0; t < seq; t++) for (let u = 0; u < width; u++) mask[t * width + u] = u - prefixLen > t ? -1e9 : 0;
  return {
    cos: op.constant(g, { dtype: 'float32', shape: [seq, half], data: cos }, 'rope_cos'),
    sin: op.constant(g, { dtype: 'float32', shape: [seq, half], data: sin }, 'rope_sin'),
    mask: op.constant(g, { dtype: 'float32', shape: [seq, width], data: mask }, 'causal_mask'),
  };
}
