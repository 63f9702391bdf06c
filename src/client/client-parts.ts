import { OPTIMIZER_PREFIX, packOptimizerState, unpackOptimizerState } from '../federation/optimizer-handoff.js';
import { applyDelta, encodeUpdate, isDeltaEncoded, quantizeDelta } from '../federation/update-encoding.js';
import { decodeTensor, encodeTensor, type TensorContext, type WireTensor } from '../protocol/tensors.js';
import { UserError } from '../util/errors.js';
import { openHidden, unflattenMean } from '../federation/secure-aggregation.js';
import type { Trainer } from './trainer.js';

/**
 * What goes up with a client's round and what comes back: its trainable parts (float32, or
 * float16 changes from the round's start with `update_encoding: float16-delta`), the optimizer
 * state where it is shared (hand-off, client_optimizer: average), and what the strategy's client
 * half adds (SCAFFOLD's control variates).
 */
export class ClientParts {
  /** The parts this round started from: float16-delta's base (the server takes its deltas from them too), FedProx's anchor. */
  private base: Map<string, Float32Array> | null = null;
  private readonly delta: boolean;

  constructor(private readonly t: Trainer) {
    this.delta = isDeltaEncoded(t.cfg.federation.update_encoding);
  }

  /** A training round begins (its parts are final: any global parts arrived before its start). */
  startRound(): void {
    // DP-FedAvg clips the round's update, so it needs the round's start at its end.
    this.base = this.delta || this.t.cfg.privacy.dp.updates.enabled ? this.copy() : null;
  }

  /** The parts as this round began (float16-delta's base, FedProx's anchor): one copy, made when first asked for. */
  roundStart(): Map<string, Float32Array> {
    return (this.base ??= this.copy());
  }

  private copy(): Map<string, Float32Array> {
    return new Map([...this.t.params].map(([n, d]) => [n, Float32Array.from(d)]));
  }

  /** The round's upload: the parts, shared optimizer state, and `extra` (the client half's entries). */
  upload(ctx: TensorContext, extra: [string, Float32Array][]): WireTensor[] {
    const t = this.t;
    const entries = [...t.params, ...(t.sharesOptimizer ? packOptimizerState(t.optimizer, t.params) : []), ...extra];
    const deltas = this.delta && this.base ? quantizeDelta(this.base, t.params) : null;
    return encodeUpdate(entries, deltas, ctx, (n, d) =>
      encodeTensor(n, { dtype: 'float32', shape: [d.length], data: d }, ctx),
    );
  }

  /** Apply a hidden aggregate (privacy.hide_aggregate): open it with the federation secret, take the mean. */
  receiveHidden(w: WireTensor, ctx: TensorContext, round: number, total: number, secret: Buffer | null): void {
    const t = this.t;
    if (!secret)
      throw new UserError(
        'the server sent a hidden aggregate, but this client has no federation secret (privacy.hide_aggregate needs client kits from flglm keygen)',
      );
    const spec = new Map([...t.params].map(([n, d]) => [n, d.length]));
    const length = [...spec.values()].reduce((a, b) => a + b, 0);
    const words = decodeTensor(w, { name: w.name, dtype: 'int32', shape: [length] }, ctx).data as Int32Array;
    const mean = unflattenMean(
      openHidden(new Uint32Array(words.buffer, words.byteOffset, words.length), secret, round, total),
      spec,
      total,
      t.cfg.privacy.secure_aggregation.scale_bits,
    );
    for (const [n, d] of mean) {
      if (!d.every(Number.isFinite))
        throw new UserError(
          `the hidden aggregate of round ${round} opens to non-finite values (a different federation secret?)`,
        );
      t.params.get(n)!.set(d);
    }
  }

  /** Apply an `averaged` message: global parts (float32, or float16 deltas from this round's start), relayed moments, the client half's entries. */
  receive(tensors: WireTensor[], ctx: TensorContext): void {
    const t = this.t;
    const moments = new Map<string, Float32Array>();
    for (const w of tensors) {
      const of = t.half?.incoming?.(w.name);
      if (of !== undefined) {
        const param = t.params.get(of);
        if (!param) throw new UserError(`server sent ${w.name} for ${of}, a parameter this client does not train`);
        t.half!.receive!(
          w.name,
          decodeTensor(w, { name: w.name, dtype: 'float32', shape: [param.length] }, ctx).data as Float32Array,
        );
        continue;
      }
      if (t.sharesOptimizer && w.name.startsWith(OPTIMIZER_PREFIX)) {
        moments.set(w.name, decodeTensor(w, { name: w.name, dtype: 'float32' }, ctx).data as Float32Array);
        continue;
      }
      const target = t.params.get(w.name);
      if (!target) throw new UserError(`server sent averaged parameter ${w.name}, which this client does not train`);
      const base = this.delta && w.dtype === 'float16' ? this.base?.get(w.name) : undefined;
      if (this.delta && w.dtype === 'float16' && !base)
        throw new UserError(`server sent ${w.name} as a float16 delta, but this client has no round to take it from`);
      const data = decodeTensor(w, { name: w.name, dtype: base ? 'float16' : 'float32', shape: [target.length] }, ctx)
        .data as Float32Array;
      target.set(base ? applyDelta(base, data, data) : data);
    }
    if (moments.size) unpackOptimizerState(t.optimizer, moments, t.params);
  }
}
