import { Worker } from 'node:worker_threads';
import type { TrunkWorkerInit } from './trunk-worker.js';
import { RequestReplica, type ReplicaArgs, type ReplicaOp, type ReplicaResult } from './replica.js';

/** Main-thread handle of a trunk replica running in a worker thread (requests by id, answered in order). */
export class TrunkReplica extends RequestReplica {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;

  readonly label: string;

  /** `transfer`: buffers of `init` handed to the worker rather than copied (they are unusable here afterwards). */
  constructor(
    readonly index: number,
    init: TrunkWorkerInit,
    transfer: ArrayBuffer[] = [],
  ) {
    super();
    this.label = `local worker ${index}`;
    this.worker = new Worker(new URL('./trunk-worker.js', import.meta.url), {
      workerData: init,
      transferList: transfer,
    });
    this.worker.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`trunk replica ${index}: ${m.error}`));
    });
    this.worker.on('error', (e) => this.failAll(e));
    this.worker.on('exit', (code) => this.failAll(new Error(`trunk replica ${index} exited with code ${code}`)));
  }

  private failAll(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  request<K extends ReplicaOp>(op: K, args: ReplicaArgs<K>): Promise<ReplicaResult<K>> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      // Structured clone copies the tensors; the worker transfers its results back without copying.
      this.worker.postMessage({ id, op, args });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
