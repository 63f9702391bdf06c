import { parentPort, workerData } from 'node:worker_threads';
import type { ModelConfig } from '../../model/config.js';
import type { ParamStore, PeftConfig, StoredParam } from '../../model/params.js';
import type { SplitPoints } from '../../model/partition.js';
import { PartDecoder } from '../../model/part-decoder.js';
import type { RuntimeOptions } from '../../runtime/session.js';
import { tensor, type TensorData } from '../../runtime/tensor.js';

/** What the serving trunk starts from: the model, its trunk tensors, and the size of its cache. */
export interface InferenceWorkerInit {
  model: ModelConfig;
  split: SplitPoints;
  peft: PeftConfig;
  runtime: RuntimeOptions;
  /** Float32, or quantized where the base was (`model.frozen_dtype` int8 / int4: decoded by the same kernels). */
  params: [string, StoredParam][];
  /** Rows of the shared KV cache (sequences of all sessions together) and positions per row. */
  rows: number;
  cacheLen: number;
}

/** Requests the serving trunk answers (worker thread: ORT blocks the thread it runs on). */
export interface InferenceOps {
  /** A session's prompts' h_A [b, P, D] into cache rows [row0, row0 + b) -> h_B [b, P, D]. */
  prefill: [{ row0: number; hA: TensorData; lengths: number[] }, TensorData];
  /**
   * One decode step for the rows given (of any sessions), each at its position: their h_A rows
   * ([rows.length, D], in that order) -> their h_B rows. Runs over cache rows [0, span).
   */
  decode: [{ span: number; rows: number[]; positions: number[]; hA: Float32Array }, Float32Array];
  clear: [{ row0: number; count: number }, null];
}
export type InferenceOp = keyof InferenceOps;

const init = workerData as InferenceWorkerInit;
const store: ParamStore = new Map(init.params);
const trunk = new PartDecoder(init.model, init.peft, store, 'trunk', init.split, init.cacheLen, init.runtime);
const cache = trunk.newCache(init.rows);
const D = init.model.hidden_size;

const handlers: { [K in InferenceOp]: (a: InferenceOps[K][0]) => Promise<InferenceOps[K][1]> } = {
  async prefill({ row0, hA, lengths }) {
    return trunk.prefill(hA, lengths, cache, row0);
  },
  async decode({ span, rows, positions, hA }) {
    const input = new Float32Array(span * D);
    const pos: (number | null)[] = new Array(span).fill(null);
    rows.forEach((r, k) => {
      input.set(hA.subarray(k * D, (k + 1) * D), r * D);
      pos[r] = positions[k];
    });
    const out = (await trunk.decode(tensor('float32', [span, 1, D], input), pos, cache)).data as Float32Array;
    const picked = new Float32Array(rows.length * D);
    rows.forEach((r, k) => picked.set(out.subarray(r * D, (r + 1) * D), k * D));
    return picked;
  },
  async clear({ row0, count }) {
    cache.clear(row0, count);
    return null;
  },
};

let queue = Promise.resolve();
parentPort!.on('message', (msg: { id: number; op: InferenceOp; args: never }) => {
  queue = queue.then(async () => {
    try {
      if (!Object.hasOwn(handlers, msg.op)) throw new Error(`unknown request ${String(msg.op)}`);
      const t0 = performance.now();
      const result = await (handlers[msg.op] as (a: never) => Promise<unknown>)(msg.args);
      // The trunk's own time for this request (queueing excluded): the serving statistics.
      parentPort!.postMessage({ id: msg.id, ok: true, result, seconds: (performance.now() - t0) / 1000 });
    } catch (e) {
      parentPort!.postMessage({ id: msg.id, ok: false, error: (e as Error).message });
    }
  });
});
parentPort!.postMessage({ ready: true, cacheBytes: cache.bytes });
