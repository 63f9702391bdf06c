import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { attentionScale, headDim, type Activation, type ModelConfig } from './config.js';
import type { FamilyTraits } from './families/traits.js';
import type { Positions } from './positions.js';
import { LINEAR_NAMES, layerPrefix, type LoraTarget, type PeftConfig } from './weights.js';

// The LLaMA-style decoder, written as graph-building functions in the order data meets them:
// embedding -> [RMSNorm -> attention (RoPE, GQA, causal or sliding window) -> residual -> RMSNorm ->
// gated MLP -> residual] x L -> RMSNorm -> LM head. Where a family differs (Gemma's 1 + w norms and
// scaled embeddings, Phi-3's fused projections, ...) a trait (families/family.ts) or a config field
// says how; families/decoder.ts stacks the blocks.

/** The graph value of a parameter (a graph input, fed from the store; see graph-weights.ts). */
export type WeightLookup = (name: string) => Value;

export interface BlockContext {
  config: ModelConfig;
  traits: FamilyTraits;
  peft: PeftConfig;
  weight: WeightLookup;
  has: (name: string) => boolean;
  /** x @ a linear weight: MatMul, or a quantized kernel for a weight held quantized (graph-weights.ts). */
  times?: (x: Value, name: string) => Value;
  /** Rotary tables and attention masks of each kind of layer (positions.ts). */
  positions: Positions;
  /** LoRA dropout mask for a layer's target (0 or 1/(1-p) per element), during training only. */
  loraDropout?: (layer: number, target: LoraTarget, like: Value) => Value;
}

const scalar = (like: Value, v: number) => op.scalarLike(like, v);

export function embed(ctx: BlockContext, tokens: Value): Value {
  const x = op.gather(ctx.weight('model.embed_tokens.weight'), tokens, 0);
  return ctx.traits.embedScale ? op.mul(x, scalar(x, Math.sqrt(ctx.config.hidden_size))) : x;
}

export function rmsNorm(x: Value, scale: Value, eps: number): Value {
  const meanSquare = op.reduceMean(op.mul(x, x), [-1], true);
  return op.mul(op.mul(x, op.reciprocal(op.sqrt(op.add(meanSquare, scalar(x, eps))))), scale);
}

/** The RMSNorm with weight `name`: scaled by the weight, or by 1 + the weight (Gemma). */
export function norm(ctx: BlockContext, x: Value, name: string): Value {
  const w = ctx.weight(name);
  return rmsNorm(x, ctx.traits.norm === 'one-plus-weight' ? op.add(w, scalar(w, 1)) : w, ctx.config.rms_norm_eps);
}

/**
 * x @ W (+ bias) (+ LoRA: (x @ A) @ B * alpha / rank). Every projection of a block is emitted here
 * and nowhere else, so another kind of weight (quantized, say) changes this function only.
 */
export function linear(ctx: BlockContext, layer: number, target: LoraTarget, x: Value): Value {
  const name = `${layerPrefix(layer)}.${LINEAR_NAMES[target]}`;
  let y = ctx.times ? ctx.times(x, `${name}.weight`) : op.matmul(x, ctx.weight(`${name}.weight`));
  if (ctx.has(`${name}.bias`)) y = op.add(y, ctx.weight(`${name}.bias`));
  if (ctx.peft.method === 'lora' && ctx.peft.lora.targets.includes(target)) {
    const xin = ctx.loraDropout ? op.mul(x, ctx.loraDropout(layer, target, x)) : x;
    const low = op.matmul(op.matmul(xin, ctx.weight(`${name}.lora_A`)), ctx.weight(`${name}.lora_B`));
    y = op.add(y, op.mul(low, scalar(x, ctx.peft.lora.alpha / ctx.peft.lora.rank)));
  }
  return y;
}

/** Queries, keys and values [B, S, *]: three projections, or one fused `qkv_proj` split in three (Phi-3). */
function projectQkv(ctx: BlockContext, layer: number, x: Value): [Value, Value, Value] {
  if (ctx.traits.projections === 'split')
    return [linear(ctx, layer, 'q', x), linear(ctx, layer, 'k', x), linear(ctx, layer, 'v', x)];
  const c = ctx.config,
    q = c.num_attention_heads * headDim(c),
    kv = c.num_key_value_heads * headDim(c);
  const [qs, ks, vs] = op.split(linear(ctx, layer, 'qkv', x), [q, kv, kv], 2);
  return [qs, ks, vs];
}

/**
 * Rotary embedding on [B, H, S, Dh] with HF's rotate-half convention, over the first 2 * cos.width
 * dimensions of each head (all of them unless the model rotates only part: Phi-3's partial_rotary_factor).
 */
export function rotary(x: Value, cos: Value, sin: Value): Value {
  const half = cos.shape[cos.rank - 1],
    dh = x.shape[3];
  const [rot, pass] = 2 * half < dh ? op.split(x, [2 * half, dh - 2 * half], 3) : [x, null];
  const [x1, x2] = op.split(rot, [half, half], 3);
  const rotated = op.concat([op.sub(op.mul(x1, cos), op.mul(x2, sin)), op.add(op.mul(x2, cos), op.mul(x1, sin))], 3);
  return pass ? op.concat([rotated, pass], 3) : rotated;
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

/** Raw q.k scores scaled, soft-capped where the model caps them (Gemma 2: cap * tanh(s / cap)), then masked. */
function maskedScores(c: ModelConfig, raw: Value, mask: Value): Value {
  let s = op.mul(raw, scalar(raw, attentionScale(c)));
  const cap = c.attn_logit_softcapping;
  if (cap) s = op.mul(op.tanh(op.div(s, scalar(s, cap))), scalar(s, cap));
  return op.add(s, mask);
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
  const { cos, sin } = ctx.positions.rotary(layer);
  const mask = ctx.positions.mask(layer);
  // Qwen3 / Gemma 3: per-head RMSNorm of queries and keys before RoPE.
  const qkNorm = (t: Value, which: 'q' | 'k') =>
    ctx.traits.qkNorm ? norm(ctx, t, `${layerPrefix(layer)}.self_attn.${which}_norm.weight`) : t;
  const [qp, kp, vp] = projectQkv(ctx, layer, x);
  const q = rotary(qkNorm(heads(qp, h, dh), 'q'), cos, sin);
  let k = rotary(qkNorm(heads(kp, hkv, dh), 'k'), cos, sin);
  let v = heads(vp, hkv, dh);
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
  if (cache?.past) return linear(ctx, layer, 'o', groupedAttention(c, q, segments, mask));
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
  const scores = maskedScores(c, op.matmul(q, op.transpose(k, [0, 1, 3, 2])), mask);
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
 * as the path above, in another order: the scores of one row are the same dot products.
 */
function groupedAttention(c: ModelConfig, q: Value, segments: { key: Value; value: Value }[], mask: Value): Value {
  const [b, h, s, dh] = q.shape;
  const hkv = c.num_key_value_heads,
    g = h / hkv;
  const qg = op.reshape(q, [b, hkv, g * s, dh]);
  const raw = op.concat(
    segments.map((x) => op.matmul(qg, op.transpose(x.key, [0, 1, 3, 2]))),
    3,
  );
  const t = raw.shape[3];
  const probs = op.reshape(op.softmax(maskedScores(c, op.reshape(raw, [b, h, s, t]), mask), -1), [b, hkv, g * s, t]);
  const lengths = segments.map((x) => x.key.shape[2]);
  const parts = lengths.length > 1 ? op.split(probs, lengths, 3) : [probs];
  const context = parts.map((pr, i) => op.matmul(pr, segments[i].value)).reduce((acc, x) => op.add(acc, x));
  return op.reshape(op.transpose(op.reshape(context, [b, h, s, dh]), [0, 2, 1, 3]), [b, s, h * dh]);
}

/** The MLP's gate activation: SiLU (SwiGLU), or GELU with the tanh approximation (Gemma's GeGLU) or exact. */
function activate(kind: Activation | undefined, x: Value): Value {
  if (kind === 'gelu') return op.gelu(x);
  if (kind === 'gelu_pytorch_tanh') {
    const inner = op.mul(
      op.add(x, op.mul(op.mul(op.mul(x, x), x), scalar(x, 0.044715))),
      scalar(x, Math.sqrt(2 / Math.PI)),
    );
    return op.mul(op.mul(x, scalar(x, 0.5)), op.add(scalar(x, 1), op.tanh(inner)));
  }
  return op.mul(x, op.sigmoid(x));
}

/** down(act(gate(x)) * up(x)); gate and up fused in one `gate_up_proj` for Phi-3. */
export function mlp(ctx: BlockContext, layer: number, x: Value): Value {
  const f = ctx.config.intermediate_size;
  const [gate, up] =
    ctx.traits.projections === 'fused'
      ? op.split(linear(ctx, layer, 'gate_up', x), [f, f], 2)
      : [linear(ctx, layer, 'gate', x), linear(ctx, layer, 'up', x)];
  return linear(ctx, layer, 'down', op.mul(activate(ctx.config.hidden_act, gate), up));
}

/** Pre-norm residual block; Gemma 2/3 also norm each sublayer's output ("sandwich" norms). */
export function block(ctx: BlockContext, layer: number, x: Value, cache?: KvCache): Value {
  const p = layerPrefix(layer);
  const sandwich = ctx.traits.sandwichNorms;
  let a = attention(ctx, layer, norm(ctx, x, `${p}.input_layernorm.weight`), cache);
  if (sandwich) a = norm(ctx, a, `${p}.post_attention_layernorm.weight`);
  const h = op.add(x, a);
  const m = sandwich
    ? norm(
        ctx,
        mlp(ctx, layer, norm(ctx, h, `${p}.pre_feedforward_layernorm.weight`)),
        `${p}.post_feedforward_layernorm.weight`,
      )
    : mlp(ctx, layer, norm(ctx, h, `${p}.post_attention_layernorm.weight`));
  return op.add(h, m);
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
  /** Logits become cap * tanh(logits / cap) (Gemma 2's final_logit_softcapping). */
  softcap?: number;
}

/** Final norm and LM head: [B, S, D] -> the normed rows and the projection (see `logitsOf`). */
export function lmHead(ctx: BlockContext, x: Value): LmHead {
  const c = ctx.config;
  const [b, s, d] = x.shape;
  const hidden = op.reshape(norm(ctx, x, 'model.norm.weight'), [b * s, d]);
  const softcap = c.final_logit_softcapping ? { softcap: c.final_logit_softcapping } : {};
  return c.tie_word_embeddings
    ? { hidden, weight: ctx.weight('model.embed_tokens.weight'), vocabMajor: true, ...softcap }
    : { hidden, weight: ctx.weight('lm_head.weight'), vocabMajor: false, ...softcap };
}

/** The projection of some rows to the vocabulary, before any soft-capping. */
export function rawLogits(head: LmHead, rows: Value): Value {
  return op.gemm(rows, head.weight, null, { transB: head.vocabMajor });
}

/** tanh(raw / cap) of soft-capped logits (their gradient needs it), or null where the model does not cap. */
export function capRatio(head: LmHead, raw: Value): Value | null {
  return head.softcap ? op.tanh(op.div(raw, scalar(raw, head.softcap))) : null;
}

/** Logits [rows, V] of some rows of the LM head's input (all of them by default). */
export function logitsOf(head: LmHead, rows: Value = head.hidden): Value {
  const raw = rawLogits(head, rows);
  const t = capRatio(head, raw);
  return t ? op.mul(t, scalar(t, head.softcap!)) : raw;
}
