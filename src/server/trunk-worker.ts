import { parentPort, workerData } from 'node:worker_threads';
import { PartExecutor, type DropoutMasks } from '../runtime/part-executor.js';
import { createOptimizer, globalNorm, scaleGradients, type OptimizerConfig, type OptimizerState } from '../runtime/optimizer.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamStore, PeftConfig } from '../model/params.js';
import type { SplitPoints } from '../model/partition.js';
import type { RuntimeOptions } from '../runtime/session.js';
import type { TensorData } from '../runtime/tensor.js';

/**
 * A trunk replica in its own thread: ONNX Runtime blocks the thread it runs on, so the server's
 * gRPC event loop never runs ORT itself. The replica owns its parameters and optimizer; the main
 * thread sends activations and gradients (transferred, not copied) and gets results back.
 */
export interface TrunkWorkerInit {
  model: ModelConfig;
  split: SplitPoints;
  peft: PeftConfig;
  optimizer: OptimizerConfig;
  runtime: RuntimeOptions;
  params: [string, { shape: number[]; data: Float32Array }][];
  optimizerState?: OptimizerState;
}

export type TrunkRequest =
  | { op: 'forward'; key: string; keep: boolean; hA: TensorData }
  | { op: 'backward'; key: string; dhB: TensorData }
  | { op: 'apply'; key: string; lr: number; scale: number }
  | { op: 'getParams' }
  | { op: 'setParams'; params: [string, Float32Array][] }
  | { op: 'getState' }
  | { op: 'drop'; key: string };

const init = workerData as TrunkWorkerInit;
const store: ParamStore = new Map(init.params);
const trunk = new PartExecutor('trunk', init.model, init.split, init.peft, store, init.runtime);
const optimizer = createOptimizer(init.optimizer);
if (init.optimizerState) optimizer.load(init.optimizerState);
const saved = new Map<string, { hA: TensorData; masks: DropoutMasks }>();
/** Gradients of a backward waiting for their `apply` (keyed like the saved activations). */
const pending = new Map<string, Map<string, Float32Array>>();
const trainable = () => new Map(trunk.trainable.map((n) => [n, store.get(n)!.data]));

async function handle(req: TrunkRequest): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
  switch (req.op) {
    case 'forward': {
      const masks = req.keep ? await trunk.newDropoutMasks(req.hA.shape[0], req.hA.shape[1]) : {};
      const hB = await trunk.forward(req.hA, req.keep, masks);
      if (req.keep) saved.set(req.key, { hA: req.hA, masks });
      const copy = Float32Array.from(hB.data as Float32Array);
      return { result: { dtype: 'float32', shape: hB.shape, data: copy }, transfer: [copy.buffer] };
    }
    case 'backward': {
      const kept = saved.get(req.key);
      if (!kept) throw new Error(`no forward activations kept for ${req.key}`);
      saved.delete(req.key);
      const r = await trunk.backward(kept.hA, req.dhB, kept.masks);
      pending.set(req.key, r.grads);
      const dhA = Float32Array.from(r.inputGrad!.data as Float32Array);
      return { result: { dhA: { dtype: 'float32', shape: r.inputGrad!.shape, data: dhA }, gradNorm: globalNorm(r.grads.values()) }, transfer: [dhA.buffer] };
    }
    case 'apply': {
      const grads = pending.get(req.key);
      if (!grads) throw new Error(`no gradients kept for ${req.key}`);
      pending.delete(req.key);
      scaleGradients(grads, req.scale);
      optimizer.apply(trainable(), grads, req.lr);
      return { result: null, transfer: [] };
    }
    case 'getParams':
      return { result: [...trainable()].map(([n, d]) => [n, Float32Array.from(d)]), transfer: [] };
    case 'setParams':
      for (const [n, d] of req.params) store.get(n)!.data.set(d);
      return { result: null, transfer: [] };
    case 'getState':
      return { result: { optimizer: optimizer.state(), params: [...store].map(([n, p]) => [n, { shape: p.shape, data: Float32Array.from(p.data) }]) }, transfer: [] };
    case 'drop':
      saved.delete(req.key);
      pending.delete(req.key);
      return { result: null, transfer: [] };
  }
}

let queue = Promise.resolve();
parentPort!.on('message', (msg: { id: number; req: TrunkRequest }) => {
  // One request at a time: ORT runs serially inside a replica.
  queue = queue.then(async () => {
    try {
      const { result, transfer } = await handle(msg.req);
      parentPort!.postMessage({ id: msg.id, ok: true, result }, transfer);
    } catch (e) {
      parentPort!.postMessage({ id: msg.id, ok: false, error: (e as Error).message });
    }
  });
});
