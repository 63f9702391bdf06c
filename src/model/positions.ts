import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { tensor, type TensorData } from '../runtime/tensor.js';
import { layerType, rotaryDim, type LayerType, type ModelConfig } from './config.js';
import { writeRotaryRow } from './rope.js';

/**
 * What a block reads about positions: the rotary tables of its kind of layer and its attention mask
 * (full causal, or causal within the sliding window). Gemma 2 has one RoPE and two masks, Gemma 3 two
 * of each; a graph makes only the ones its layers read.
 */
export interface Positions {
  rotary(layer: number): { cos: Value; sin: Value };
  mask(layer: number): Value;
}

/** Masked-out score: exp(-1e9 - max) is exactly 0 in float32. */
const MASKED = -1e9;

type RopeKey = 'global' | 'local';
/** Sliding layers read tables of their own where the model gives them their own RoPE (Gemma 3). */
const ropeKey = (c: ModelConfig, type: LayerType): RopeKey =>
  type === 'sliding_attention' && c.local_rope ? 'local' : 'global';
const ropeType = (key: RopeKey): LayerType => (key === 'local' ? 'sliding_attention' : 'full_attention');
const suffix = (key: RopeKey) => (key === 'local' ? '_local' : '');

function lazily<K, V>(make: (key: K) => V): (key: K) => V {
  const made = new Map<K, V>();
  return (key) => {
    if (!made.has(key)) made.set(key, make(key));
    return made.get(key)!;
  };
}

/** Slots of a layer's KV cache: every position, or for a sliding layer a ring of its window. */
export function cacheSlots(c: ModelConfig, type: LayerType, cacheLen: number): number {
  return type === 'sliding_attention' ? Math.min(c.sliding_window!, cacheLen) : cacheLen;
}

/** Rotary tables and masks of a graph over `seq` positions after `prefixLen` always-visible prefix slots. */
export function positionConstants(g: Graph, c: ModelConfig, seq: number, prefixLen: number): Positions {
  const half = rotaryDim(c) / 2;
  const tables = lazily((key: RopeKey) => {
    const cos = new Float32Array(seq * half),
      sin = new Float32Array(seq * half);
    for (let t = 0; t < seq; t++) writeRotaryRow(c, ropeType(key), t, seq, cos, sin, t);
    return {
      cos: op.constant(g, { dtype: 'float32', shape: [seq, half], data: cos }, `rope_cos${suffix(key)}`),
      sin: op.constant(g, { dtype: 'float32', shape: [seq, half], data: sin }, `rope_sin${suffix(key)}`),
    };
  });
  const masks = lazily((type: LayerType) => {
    const window = type === 'sliding_attention' ? c.sliding_window! : Infinity;
    const width = prefixLen + seq;
    const mask = new Float32Array(seq * width);
    for (let t = 0; t < seq; t++)
      for (let u = prefixLen; u < width; u++)
        if (u - prefixLen > t || t - (u - prefixLen) >= window) mask[t * width + u] = MASKED;
    const name = type === 'sliding_attention' ? 'sliding_mask' : 'causal_mask';
    return op.constant(g, { dtype: 'float32', shape: [seq, width], data: mask }, name);
  });
  return { rotary: (l) => tables(ropeKey(c, layerType(c, l))), mask: (l) => masks(layerType(c, l)) };
}

/**
 * The decode step's per-row inputs (rotary tables, mask): per-row positions broadcast over heads;
 * one sequence keeps the exported decoder's documented [1, n] layout (export-onnx.ts).
 */
export function rowShape(batch: number, n: number): number[] {
  return batch === 1 ? [1, n] : [batch, 1, 1, n];
}

const maskInput = (type: LayerType) => (type === 'sliding_attention' ? 'mask_sliding' : 'mask');

/** A decode graph's position inputs (`cos`, `sin`, `mask`; `*_local`, `mask_sliding` where layers read them). */
export function decodeInputs(g: Graph, c: ModelConfig, batch: number, prefixLen: number, cacheLen: number): Positions {
  const half = rotaryDim(c) / 2;
  const tables = lazily((key: RopeKey) => ({
    cos: g.input(`cos${suffix(key)}`, 'float32', rowShape(batch, half)),
    sin: g.input(`sin${suffix(key)}`, 'float32', rowShape(batch, half)),
  }));
  const masks = lazily((type: LayerType) =>
    g.input(maskInput(type), 'float32', rowShape(batch, prefixLen + cacheSlots(c, type, cacheLen) + 1)),
  );
  return { rotary: (l) => tables(ropeKey(c, layerType(c, l))), mask: (l) => masks(layerType(c, l)) };
}

/**
 * Feeds of `decodeInputs` for rows at `positions` (null: the row is not decoding; it sees only itself).
 * A full layer's cache slot s holds position s; a sliding layer's ring slot s the latest position
 * congruent to s: visible while inside the window, i.e. every written slot but the one the new
 * position overwrites next.
 */
export function decodeFeeds(
  c: ModelConfig,
  positions: readonly (number | null)[],
  prefixLen: number,
  cacheLen: number,
  // One sequence length for the batch, as transformers takes max(position_ids) + 1 (LongRoPE picks its factors by it).
  seqLen = Math.max(0, ...positions.map((p) => p ?? 0)) + 1,
): Record<string, TensorData> {
  const n = positions.length,
    half = rotaryDim(c) / 2;
  const types = new Set<LayerType>(c.layer_types ?? ['full_attention']);
  const feeds: Record<string, TensorData> = {};
  for (const key of new Set([...types].map((t) => ropeKey(c, t)))) {
    const cos = new Float32Array(n * half),
      sin = new Float32Array(n * half);
    positions.forEach((p, r) => p !== null && writeRotaryRow(c, ropeType(key), p, seqLen, cos, sin, r));
    feeds[`cos${suffix(key)}`] = tensor('float32', rowShape(n, half), cos);
    feeds[`sin${suffix(key)}`] = tensor('float32', rowShape(n, half), sin);
  }
  for (const type of types) {
    const slots = cacheSlots(c, type, cacheLen),
      width = prefixLen + slots + 1;
    const mask = new Float32Array(n * width).fill(MASKED);
    positions.forEach((p, r) => {
      mask[r * width + width - 1] = 0; // every row sees itself
      if (p === null) return;
      mask.fill(0, r * width, r * width + prefixLen);
      for (let s = 0; s < Math.min(p, slots); s++)
        if (s !== p % slots || p < slots) mask[r * width + prefixLen + s] = 0;
    });
    feeds[maskInput(type)] = tensor('float32', rowShape(n, width), mask);
  }
  return feeds;
}
