import { CompiledGraph, type RuntimeOptions } from '../runtime/session.js';
import { tensor, type TensorData } from '../runtime/tensor.js';
import { headDim, type ModelConfig } from './config.js';
import { buildDecode, buildPrefill, partOutputName, rowShape } from './decode-graphs.js';
import { writeRotaryRow } from './llama.js';
import { weightFeed } from './graph-weights.js';
import type { ParamStore, PeftConfig } from './params.js';
import { partSpan, type PartName, type SplitPoints } from './partition.js';

/**
 * Keys and values of some layers for `rows` sequences of up to `len` positions, [rows, Hkv, len, Dh]
 * per layer, row-major: the first n rows are one contiguous block, fed to a decode program of batch
 * n without a copy (a server serving several sessions keeps them all in one store, each in its rows).
 */
export class KvStore {
  readonly keys = new Map<number, Float32Array>();
  readonly values = new Map<number, Float32Array>();

  constructor(
    readonly layers: readonly number[],
    readonly rows: number,
    readonly hkv: number,
    readonly len: number,
    readonly dh: number,
  ) {
    for (const l of layers) {
      this.keys.set(l, new Float32Array(rows * hkv * len * dh));
      this.values.set(l, new Float32Array(rows * hkv * len * dh));
    }
  }

  /** Bytes held (the cache is allocated once, whole). */
  get bytes(): number {
    return 2 * this.layers.length * this.rows * this.hkv * this.len * this.dh * 4;
  }

  /** Write positions 0..n-1 of output row `from` of a fresh [b, Hkv, n, Dh] tensor into row `to` from slot `at`. */
  write(
    layer: number,
    kind: 'key' | 'value',
    fresh: Float32Array,
    n: number,
    from: number,
    to: number,
    at: number,
  ): void {
    const cache = (kind === 'key' ? this.keys : this.values).get(layer)!;
    const { hkv, len, dh } = this;
    const count = Math.min(n, len - at);
    for (let h = 0; h < hkv; h++) {
      const src = (from * hkv + h) * n * dh;
      cache.set(fresh.subarray(src, src + count * dh), ((to * hkv + h) * len + at) * dh);
    }
  }

  /** Forget rows [r0, r0 + count) (a session ended; its rows are reused). */
  clear(r0: number, count: number): void {
    const block = this.hkv * this.len * this.dh;
    for (const l of this.layers) {
      this.keys.get(l)!.fill(0, r0 * block, (r0 + count) * block);
      this.values.get(l)!.fill(0, r0 * block, (r0 + count) * block);
    }
  }

  /** past_key_l / past_value_l of rows [0, n), as views (no copy). */
  feeds(n: number): Record<string, TensorData> {
    const out: Record<string, TensorData> = {};
    const size = n * this.hkv * this.len * this.dh;
    for (const l of this.layers) {
      out[`past_key_${l}`] = tensor('float32', [n, this.hkv, this.len, this.dh], this.keys.get(l)!.subarray(0, size));
      out[`past_value_${l}`] = tensor(
        'float32',
        [n, this.hkv, this.len, this.dh],
        this.values.get(l)!.subarray(0, size),
      );
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
    return new KvStore(this.layers, rows, this.config.num_key_value_heads, this.cacheLen, headDim(this.config));
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

  private async run(session: CompiledGraph, feeds: Record<string, TensorData>): Promise<Record<string, TensorData>> {
    for (const spec of session.inputs) {
      const p = feeds[spec.name] ? undefined : this.store.get(spec.name);
      if (p) feeds[spec.name] = weightFeed(p);
    }
    return session.run(feeds);
  }

  /**
   * The prompts [b, P] (or their activations [b, P, D]), right padded; `lengths` per row. Writes
   * positions 0..P-1 into cache rows [row0, row0 + b); returns activations [b, P, D] or the logits
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
        cache.write(l, 'key', out[`key_${l}`].data as Float32Array, P, r, row0 + r, 0);
        cache.write(l, 'value', out[`value_${l}`].data as Float32Array, P, r, row0 + r, 0);
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
    const c = this.config,
      dh = headDim(c),
      half = dh / 2,
      width = this.prefixLen + this.cacheLen + 1;
    const cos = new Float32Array(n * half),
      sin = new Float32Array(n * half);
    const mask = new Float32Array(n * width).fill(-1e9);
    positions.forEach((p, r) => {
      mask[r * width + width - 1] = 0; // every row sees itself
      if (p === null) return;
      writeRotaryRow(c, p, cos, sin, r);
      mask.fill(0, r * width, r * width + this.prefixLen + p);
    });
    const feeds: Record<string, TensorData> = {
      [input.dtype === 'int64' ? 'token' : 'hidden_in']: input,
      cos: tensor('float32', rowShape(n, half), cos),
      sin: tensor('float32', rowShape(n, half), sin),
      mask: tensor('float32', rowShape(n, width), mask),
      ...cache.feeds(n),
    };
    const out = await this.run(await this.program('decode', n, 1), feeds);
    for (const l of this.layers)
      positions.forEach((p, r) => {
        if (p === null || p >= this.cacheLen) return;
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
