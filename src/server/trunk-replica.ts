import { Worker } from 'node:worker_threads';
import type { TensorData } from '../runtime/tensor.js';
import type { OptimizerState } from '../runtime/optimizer.js';
import type { TrunkRequest, TrunkWorkerInit } from './trunk-worker.js';
import type { Replica } from './replica.js';

/** Main-thread handle of a trunk replica running in a worker thread. */
export class TrunkReplica implements Replica {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;

  readonly label: string;

  constructor(readonly index: number, init: TrunkWorkerInit) {
    this.label = `local worker ${index}`;
    this.worker = new Worker(new URL('./trunk-worker.js', import.meta.url), { workerData: init });
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

  private call<T>(req: TrunkRequest, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, req }, transfer);
    });
  }

  /** h_A -> h_B. With `keep`, the replica keeps h_A for the backward of the same key. */
  forward(key: string, hA: TensorData, keep: boolean): Promise<TensorData> {
    return this.call({ op: 'forward', key, keep, hA });
  }

  backward(key: string, dhB: TensorData): Promise<{ dhA: TensorData; gradNorm: number }> {
    return this.call({ op: 'backward', key, dhB });
  }

  apply(key: string, lr: number, scale: number): Promise<void> {
    return this.call({ op: 'apply', key, lr, scale });
  }

  drop(key: string): Promise<void> {
    return this.call({ op: 'drop', key });
  }

  getParams(): Promise<[string, Float32Array][]> {
    return this.call({ op: 'getParams' });
  }

  setParams(params: [string, Float32Array][]): Promise<void> {
    return this.call({ op: 'setParams', params });
  }

  getState(): Promise<{ optimizer: OptimizerState; params: [string, { shape: number[]; data: Float32Array }][] }> {
    return this.call({ op: 'getState' });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
