import type { ParentSubCall, SubReply } from '../protocol/messages.js';
import type { WireTensor } from '../protocol/tensors.js';
import { joinTensorSet } from '../protocol/chunking.js';
import { RequestReplica, type ReplicaArgs, type ReplicaOp, type ReplicaResult } from './replica.js';
import { packValue, unpackValue } from './replica-wire.js';
import type { TrunkWorkerInit } from './trunk-worker.js';

/** A whole (reassembled) reply. */
type Answer = { json: string; tensors: WireTensor[] };

/** Link-level requests of the sub-server stream, beside the replica table's. */
export type SubServerOp = ReplicaOp | 'init' | 'close';

/**
 * Parent side of a trunk replica hosted by a sub-server process (`flglm server --role sub`).
 * Requests of the replica table travel down the sub-server's stream and are answered by id. The
 * link is protected by mutual TLS; both ends belong to the server operator, so tensors are not
 * payload-encrypted.
 */
export class RemoteReplica extends RequestReplica {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Answer) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;
  /** Parts of a reply that arrives in several messages (tensors over chunk_bytes). */
  private readonly parts = new Map<number, WireTensor[]>();

  constructor(
    readonly label: string,
    private readonly call: ParentSubCall,
  ) {
    super();
    call.on('data', (r: SubReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      const count = Math.max(1, r.partCount);
      const tensors = [...(this.parts.get(r.id) ?? []), ...r.tensors];
      if (r.partIndex + 1 < count) return void this.parts.set(r.id, tensors);
      this.parts.delete(r.id);
      this.pending.delete(r.id);
      if (!r.ok) return p.reject(new Error(`${label}: ${r.error}`));
      try {
        p.resolve({ json: r.json, tensors: joinTensorSet(tensors, `${label} reply`) });
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

  private send(op: SubServerOp, value: unknown): Promise<Answer> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const { json, tensors } = packValue(value);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.call.write({ id, op, json, tensors });
    });
  }

  async request<K extends ReplicaOp>(op: K, args: ReplicaArgs<K>): Promise<ReplicaResult<K>> {
    const r = await this.send(op, args);
    return unpackValue(r.json, r.tensors) as ReplicaResult<K>;
  }

  /** Give the sub-server the trunk (all its weights, frozen ones included) and the training setup. */
  async init(init: TrunkWorkerInit, chunkBytes: number): Promise<void> {
    await this.send('init', { init, chunkBytes });
  }

  async close(): Promise<void> {
    try {
      await this.send('close', null);
    } catch {
      /* already gone */
    }
    try {
      this.call.end();
    } catch {
      /* already gone */
    }
  }
}
