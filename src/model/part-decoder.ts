import { CompiledGraph, type RuntimeOptions } from '../runtime/session.js';
import { tensor, type TensorData } from '../runtime/tensor.js';
import { headDim, layerType, type ModelConfig } from './config.js';
import { buildDecode, buildPrefill, partOutputName } from './decode-graphs.js';
import { cacheSlots, decodeFeeds } from './positions.js';
import { storedFeed } from './graph-weights.js';
import type { ParamStore, PeftConfig } from './params.js';
import { partSpan, type PartName, type SplitPoints } from './partition.js';

/**
 * Keys and values of some layers for `rows` sequences, [rows, Hkv, slots, Dh] per layer, row-major:
 * the first n rows are one contiguous block, fed to a decode program of batch n without a copy (a
 * server serving several sessions keeps them all in one store, each in its rows). A full layer has a
 * slot per position; a sliding-window layer a ring of its window (position q in slot q mod window),
 * so its cache stays the window's size however long the sequence grows.
 */
export class KvStore {
  readonly keys = new Map<number, Float32Array>();
  readonly values = new Map<number, Float32Array>();

  constructor(
    /** Each layer's slots, and whether they are a ring. */
    readonly slots: ReadonlyMap<number, { slots: number; ring: boolean }>,
    readonly rows: number,
    readonly hkv: number,
    readonly dh: number,
  ) {
    for (const [l, { slots: n }] of slots) {
      this.keys.set(l, new Float32Array(rows * hkv * n * dh));
      this.values.set(l, new Float32Array(rows * hkv * n * dh));
    }
  }

  get layers(): number[] {
    return [...this.slots.keys()];
  }

  /** Bytes held (the cache is allocated once, whole). */
  get bytes(): number {
    let n = 0;
    for (const { slots } of this.slots.values()) n += 2 * this.rows * this.hkv * slots * this.dh * 4;
    return n;
  }

  /**
   * Store positions position..position+count-1, the first `count` of output row `from` of a fresh
   * [b, Hkv, n, Dh] tensor, in row `to`: a full layer drops positions past its slots, a ring keeps the last.
   */
  write(
    layer: number,
    kind: 'key' | 'value',
    fresh: Float32Array,
    n: number,
    from: number,
    to: number,
    position: number,
    count = n,
  ): void {
    const cache = (kind === 'key' ? this.keys : this.values).get(layer)!;
    const { slots, ring } = this.slots.get(layer)!;
    const { hkv, dh } = this;
    for (let i = Math.max(0, ring ? count - slots : 0); i < count; i++) {
      const q = position + i;
      if (!ring && q >= slots) break;
      const slot = q % slots;
      for (let h = 0; h < hkv; h++) {
        const src = ((from * hkv + h) * n + i) * dh;
        cache.set(fresh.subarray(src, src + dh), ((to * hkv + h) * slots + slot) * dh);
      }
    }
  }

  /** Forget rows [r0, r0 + count) (a session ended; its rows are reused). */
  clear(r0: number, count: number): void {
    for (const [l, { slots }] of this.slots) {
      const block = this.hkv * slots * this.dh;
      this.keys.get(l)!.fill(0, r0 * block, (r0 + count) * block);
      this.values.get(l)!.fill(0, r0 * block, (r0 + count) * block);
    }
  }

  /** past_key_l / past_value_l of rows [0, n), as views (no copy). */
  feeds(n: number): Record<string, TensorData> {
    const out: Record<string, TensorData> = {};
    for (const [l, { slots }] of this.slots) {
      const shape = [n, this.hkv, slots, this.dh];
      const size = n * this.hkv * slots * this.dh;
      out[`past_key_${l}`] = tensor('float32', shape, this.keys.get(l)!.subarray(0, size));
      out[`past_value_${l}`] = tensor('float32', shape, this.values.get(l)!.subarray(0, size));
    }
    return out;
  }
}

/**
 * One part of the model (or the whole, `full`) decoding with a KV cache: prefill and decode programs
 * compiled on first use for each batch size (and prompt length) and kept, weights fed from the store.
 */
export class PartDecoder {
  private readonly programs = new Map<string, Promise<CompiledGraph>>();
  readonly layers: number[];
  readonly prefixLen: number;

  constructor(
    readonly config: ModelConfig,
    readonly peft: PeftConfig,
    readonly store: ParamStore,
    readonly part: PartName,
    readonly split: SplitPoints,
    readonly cacheLen: number,
    readonly runtime: RuntimeOptions = {},
  ) {
    const [from, to] = partSpan(part, config, split).layers;
    this.layers = Array.from({ length: to - from }, (_, i) => from + i);
    this.prefixLen = peft.method === 'prefix' ? peft.prefix.length : 0;
  }

  /** A cache for `rows` sequences of this part's layers. */
  newCache(rows: number): KvStore {
    const c = this.config;
    const slots = new Map(
      this.layers.map((l) => {
        const type = layerType(c, l);
        return [l, { slots: cacheSlots(c, type, this.cacheLen), ring: type === 'sliding_attention' }];
      }),
    );
    return new KvStore(slots, rows, c.num_key_value_heads, headDim(c));
  }

  private program(kind: 'prefill' | 'decode', batch: number, len: number): Promise<CompiledGraph> {
    const key = `${kind}:${batch}:${len}`;
    let p = this.programs.get(key);
    if (!p) {
      const o = { part: this.part, split: this.split, batch };
      p = CompiledGraph.create(
        kind === 'prefill'
          ? buildPrefill(this.config, this.peft, this.store, len, o)
          : buildDecode(this.config, this.peft, this.store, this.cacheLen, o),
        this.runtime,
      );
      this.programs.set(key, p);
    }
    return p;
  }

  /** Run with the feeds the program takes: the given ones (it may not read every position input), weights from the store. */
  private async run(session: CompiledGraph, given: Record<string, TensorData>): Promise<Record<string, TensorData>> {
    const feeds: Record<string, TensorData> = {};
    for (const spec of session.inputs) {
      feeds[spec.name] = (given[spec.name] ? undefined : storedFeed(this.store, spec.name)) ?? given[spec.name];
    }
    return session.run(feeds);
  }

  /**
   * The prompts [b, P] (or their activations [b, P, D]), right padded; `lengths` per row. Writes
   * each row's positions 0..length-1 into cache rows [row0, row0 + b); returns activations [b, P, D] or the logits
   * at each row's last prompt position [b, V].
   */
  async prefill(input: TensorData, lengths: readonly number[], cache: KvStore, row0 = 0): Promise<TensorData> {
    const [b, P] = input.shape;
    const feeds: Record<string, TensorData> = { [input.dtype === 'int64' ? 'tokens' : 'hidden_in']: input };
    if (this.part === 'tail' || this.part === 'full') {
      const select = new Float32Array(b * P);
      lengths.forEach((n, r) => (select[r * P + n - 1] = 1));
      feeds.select = tensor('float32', [b, 1, P], select);
    }
    const out = await this.run(await this.program('prefill', b, P), feeds);
    for (const l of this.layers)
      for (let r = 0; r < b; r++) {
        cache.write(l, 'key', out[`key_${l}`].data as Float32Array, P, r, row0 + r, 0, lengths[r]);
        cache.write(l, 'value', out[`value_${l}`].data as Float32Array, P, r, row0 + r, 0, lengths[r]);
      }
    return out[partOutputName(this.part)];
  }

  /**
   * One position for cache rows [0, n): `input` [n, 1] tokens or [n, 1, D] activations, `positions`
   * each row's position (null: not decoding this step; its output is to be ignored and its cache
   * stays as it is). Writes each decoding row's new keys/values at its position.
   */
  async decode(input: TensorData, positions: readonly (number | null)[], cache: KvStore): Promise<TensorData> {
    const n = input.shape[0];
    const feeds: Record<string, TensorData> = {
      [input.dtype === 'int64' ? 'token' : 'hidden_in']: input,
      ...decodeFeeds(this.config, positions, this.prefixLen, this.cacheLen),
      ...cache.feeds(n),
    };
    const out = await this.run(await this.program('decode', n, 1), feeds);
    for (const l of this.layers)
      positions.forEach((p, r) => {
        if (p === null) return;
        cache.write(l, 'key', out[`key_${l}`].data as Float32Array, 1, r, r, p);
        cache.write(l, 'value', out[`value_${l}`].data as Float32Array, 1, r, r, p);
      });
    return out[partOutputName(this.part)];
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
  }
}
