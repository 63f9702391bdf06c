import { Worker } from 'node:worker_threads';
import type { InferenceOp, InferenceOps, InferenceWorkerInit } from './inference-worker.js';

/**
 * The serving trunk's worker thread seen from the main thread: requests by id, each answered once
 * (with the trunk's own seconds for it); a worker error fails every request still pending.
 */
export class InferenceWorkerClient {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; seconds?: (s: number) => void }
  >();

  private constructor(
    private readonly worker: Worker,
    /** Bytes of the shared KV cache the worker allocated. */
    readonly cacheBytes: number,
  ) {
    worker.on('message', (m: { id?: number; ok?: boolean; result?: unknown; error?: string; seconds?: number }) => {
      const p = m.id === undefined ? undefined : this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id!);
      if (m.seconds !== undefined) p.seconds?.(m.seconds);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`serving trunk: ${m.error}`));
    });
    worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  /** Start the worker and wait until it holds the trunk and its cache. */
  static async start(init: InferenceWorkerInit): Promise<InferenceWorkerClient> {
    const worker = new Worker(new URL('./inference-worker.js', import.meta.url), { workerData: init });
    const ready = await new Promise<{ cacheBytes: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    return new InferenceWorkerClient(worker, ready.cacheBytes);
  }

  request<K extends InferenceOp>(
    op: K,
    args: InferenceOps[K][0],
    seconds?: (s: number) => void,
  ): Promise<InferenceOps[K][1]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, seconds });
      this.worker.postMessage({ id, op, args });
    });
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}
