import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { headDim, layerType, type ModelConfig } from './config.js';
import { logitsOf, type BlockContext, type KvCache } from './llama.js';
import { cacheSlots, decodeInputs, positionConstants, type Positions } from './positions.js';
import type { ParamStore, PeftConfig } from './params.js';
import { familyOf } from './families/registry.js';
import { graphWeights, type FrozenWeights } from './graph-weights.js';
import { partOwns, partSpan, type PartName, type SplitPoints } from './partition.js';

/**
 * The two inference programs of a part of the model, for generation with a KV cache:
 * - prefill [B, P] tokens (or [B, P, D] activations) -> every layer's keys/values and the part's
 *   output: [B, P, D] activations for head and trunk, or for tail and full the logits [B, V] at
 *   each row's last prompt position (`select`, one-hot [B, 1, P]; rows are right padded);
 * - decode one position per row, [B, 1] tokens (or [B, 1, D]) against a cache [B, Hkv, M, Dh] per
 *   layer (a ring of the window for a sliding-window layer, positions.ts), with per-row rotary
 *   tables and masks -> the output and the new position's keys/values, which the caller writes
 *   into each row's slot.
 * The whole model is the part `full`; split generation runs head and tail on the client and the trunk
 * on the server with the same programs, so it decodes exactly what the merged model decodes.
 */
export interface DecodeGraphOptions {
  part: PartName;
  split: SplitPoints;
  batch: number;
  frozen?: FrozenWeights;
}

const hasLmHead = (part: PartName) => part === 'tail' || part === 'full';
const takesTokens = (part: PartName) => part === 'head' || part === 'full';
export const partOutputName = (part: PartName) => (hasLmHead(part) ? 'logits' : 'hidden');

/** The BlockContext of an inference graph of a part: its own weights, frozen as `o.frozen` says. */
export function inferenceContext(
  g: Graph,
  c: ModelConfig,
  peft: PeftConfig,
  store: ParamStore,
  o: DecodeGraphOptions,
  positions: Positions,
): BlockContext {
  const owns = o.part === 'full' ? () => true : partOwns(o.part, c, o.split);
  const { weight, has, times } = graphWeights(
    g,
    store,
    new Set([...store.keys()].filter(owns)),
    `the ${o.part}`,
    [],
    o.frozen ?? 'input',
  );
  return { config: c, traits: familyOf(c.model_type).traits, peft, weight, has, times, positions };
}

/** Token ids (`tokens` to prefill, `token` to decode) or the previous part's activations. */
function input(
  g: Graph,
  c: ModelConfig,
  part: PartName,
  batch: number,
  len: number,
  kind: 'prefill' | 'decode',
): Value {
  return takesTokens(part)
    ? g.input(kind === 'prefill' ? 'tokens' : 'token', 'int64', [batch, len])
    : g.input('hidden_in', 'float32', [batch, len, c.hidden_size]);
}

/** The part's layers over `x`, then its output: activations as they are, or the LM head on `pick(h)`. */
function output(
  ctx: BlockContext,
  part: PartName,
  split: SplitPoints,
  x: Value,
  cache: (layer: number) => KvCache,
  pick: (h: Value) => Value,
): Value {
  const family = familyOf(ctx.config.model_type);
  const h = family.decode(ctx, x, partSpan(part, ctx.config, split), cache);
  return hasLmHead(part) ? logitsOf(family.lmHead(ctx, pick(h))) : h;
}

export function buildPrefill(
  c: ModelConfig,
  peft: PeftConfig,
  store: ParamStore,
  promptLen: number,
  o: DecodeGraphOptions,
): Graph {
  const g = new Graph(`${o.part}_prefill`);
  const x = input(g, c, o.part, o.batch, promptLen, 'prefill');
  const select = hasLmHead(o.part) ? g.input('select', 'float32', [o.batch, 1, promptLen]) : null;
  const prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const ctx = inferenceContext(g, c, peft, store, o, positionConstants(g, c, promptLen, prefix));
  const cache: KvCache = {
    emit: (l, k, v) => {
      g.output(k, `key_${l}`);
      g.output(v, `value_${l}`);
    },
  };
  g.output(
    output(
      ctx,
      o.part,
      o.split,
      x,
      () => cache,
      (h) => op.matmul(select!, h),
    ),
    partOutputName(o.part),
  );
  return g;
}

export { rowShape } from './positions.js';

export function buildDecode(
  c: ModelConfig,
  peft: PeftConfig,
  store: ParamStore,
  cacheLen: number,
  o: DecodeGraphOptions,
): Graph {
  const g = new Graph(`${o.part}_decode`);
  const x = input(g, c, o.part, o.batch, 1, 'decode');
  const prefix = peft.method === 'prefix' ? peft.prefix.length : 0;
  const ctx = inferenceContext(g, c, peft, store, o, decodeInputs(g, c, o.batch, prefix, cacheLen));
  const [from, to] = partSpan(o.part, c, o.split).layers;
  const past = new Map(
    Array.from({ length: to - from }, (_, i) => from + i).map((l) => {
      const shape = [o.batch, c.num_key_value_heads, cacheSlots(c, layerType(c, l), cacheLen), headDim(c)];
      return [
        l,
        { key: g.input(`past_key_${l}`, 'float32', shape), value: g.input(`past_value_${l}`, 'float32', shape) },
      ];
    }),
  );
  const emit = (layer: number, k: Value, v: Value) => {
    g.output(k, `key_${layer}`);
    g.output(v, `value_${layer}`);
  };
  g.output(
    output(
      ctx,
      o.part,
      o.split,
      x,
      (l) => ({ past: past.get(l), emit }),
      (h) => h,
    ),
    partOutputName(o.part),
  );
  return g;
}
