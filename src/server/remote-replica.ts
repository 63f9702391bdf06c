import type * as grpc from '@grpc/grpc-js';
import { decodeTensor, encodeTensor, type TensorContext, type WireTensor } from '../protocol/tensors.js';
import { joinTensorSet } from '../protocol/chunking.js';
import type { TensorData } from '../runtime/tensor.js';
import type { OptimizerState } from '../runtime/optimizer.js';
import type { Replica } from './replica.js';

/**
 * Parent side of a trunk replica hosted by a sub-server process (`flglm server --role sub`).
 * Requests travel down the sub-server's stream and are answered by id. The link is protected by
 * mutual TLS; both ends belong to the server operator, so tensors are not payload-encrypted.
 */
export interface SubRequest { id: number; op: string; json: string; tensors: WireTensor[] }
export interface SubReply { id: number; ok: boolean; error: string; json: string; tensors: WireTensor[]; partIndex?: number; partCount?: number }

const plain: TensorContext = { clientId: 'sub-server', sessionId: '', round: 0, step: 0, channel: null };
export const enc = (name: string, t: TensorData) => encodeTensor(name, t, plain);
export const dec = (w: WireTensor, name = w.name) => decodeTensor(w, { name }, plain);

export class RemoteReplica implements Replica {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: SubReply) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;
  /** Parts of a reply that arrives in several messages (tensors over chunk_bytes). */
  private readonly parts = new Map<number, WireTensor[]>();

  constructor(readonly label: string, private readonly call: grpc.ServerDuplexStream<SubReply, SubRequest>) {
    call.on('data', (r: SubReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      const count = Math.max(1, Number(r.partCount ?? 1));
      const tensors = [...(this.parts.get(r.id) ?? []), ...r.tensors];
      if (Number(r.partIndex ?? 0) + 1 < count) return void this.parts.set(r.id, tensors);
      this.parts.delete(r.id);
      this.pending.delete(r.id);
      if (!r.ok) return p.reject(new Error(`${label}: ${r.error}`));
      try {
        p.resolve({ ...r, tensors: joinTensorSet(tensors, `${label} reply`) });
      } catch (e) {
        p.reject(e as Error);
      }
    });
    const fail = (e: Error) => {
      this.failure ??= e;
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    };
    call.on('error', (e) => fail(new Error(`${label} disconnected: ${e.message}`)));
    call.on('end', () => fail(new Error(`${label} disconnected`)));
  }

  private request(op: string, json: object, tensors: WireTensor[] = []): Promise<SubReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.call.write({ id, op, json: JSON.stringify(json), tensors });
    });
  }

  /** Give the sub-server the trunk (all its weights, frozen ones included) and the training setup. */
  async init(setup: object, params: [string, { shape: number[]; data: Float32Array }][], chunkBytes: number): Promise<void> {
    await this.request('init', { ...setup, chunkBytes }, params.map(([n, t]) => enc(n, { dtype: 'float32', shape: t.shape, data: t.data })));
  }

  async forward(key: string, hA: TensorData, keep: boolean): Promise<TensorData> {
    return dec((await this.request('forward', { key, keep }, [enc('h_A', hA)])).tensors[0]);
  }

  async backward(key: string, dhB: TensorData): Promise<{ dhA: TensorData; gradNorm: number }> {
    const r = await this.request('backward', { key }, [enc('grad_h_B', dhB)]);
    return { dhA: dec(r.tensors[0]), gradNorm: JSON.parse(r.json).gradNorm };
  }

  async apply(key: string, lr: number, scale: number): Promise<void> {
    await this.request('apply', { key, lr, scale });
  }

  async drop(key: string): Promise<void> {
    await this.request('drop', { key });
  }

  async getParams(): Promise<[string, Float32Array][]> {
    return (await this.request('getParams', {})).tensors.map((t) => [t.name, dec(t).data as Float32Array]);
  }

  async setParams(params: [string, Float32Array][]): Promise<void> {
    await this.request('setParams', {}, params.map(([n, d]) => enc(n, { dtype: 'float32', shape: [d.length], data: d })));
  }

  async getState(): Promise<{ optimizer: OptimizerState; params: [string, { shape: number[]; data: Float32Array }][] }> {
    const r = await this.request('getState', {});
    const meta = JSON.parse(r.json) as { name: string; step: number };
    const params: [string, { shape: number[]; data: Float32Array }][] = [];
    const slots: Record<string, Float32Array[]> = {};
    for (const t of r.tensors) {
      const data = dec(t).data as Float32Array;
      if (t.name.startsWith('slot:')) {
        const [name, i] = t.name.slice(5).split('#');
        (slots[name] ??= [])[Number(i)] = data;
      } else params.push([t.name, { shape: t.shape.map(Number), data }]);
    }
    return { optimizer: { name: meta.name, step: meta.step, slots }, params };
  }

  async close(): Promise<void> {
    try { await this.request('close', {}); } catch { /* already gone */ }
    try { this.call.end(); } catch { /* already gone */ }
  }
}
