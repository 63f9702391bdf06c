import { parentPort, workerData } from 'node:worker_threads';
import { PartExecutor, type DropoutMasks } from '../training/part-executor.js';
import {
  clipAndApply,
  createOptimizer,
  globalNorm,
  learningRate,
  type OptimizerConfig,
  type ScheduleConfig,
  type OptimizerState,
} from '../training/optimizer.js';
import type { ModelConfig } from '../model/config.js';
import { createTrunkHalf, type StrategyChoice } from '../federation/strategies/lookup.js';
import { float32Copy, trainableData, type ParamStore, type PeftConfig, type StoredParam } from '../model/params.js';
import type { SplitPoints } from '../model/partition.js';
import type { RuntimeOptions } from '../runtime/session.js';
import type { TensorData } from '../runtime/tensor.js';
import type { NamedParams, ReplicaArgs, ReplicaOp, ReplicaResult } from './replica.js';

/** What a trunk replica starts from: the model and training setup, and every trunk tensor. */
export interface TrunkWorkerInit {
  model: ModelConfig;
  split: SplitPoints;
  peft: PeftConfig;
  optimizer: OptimizerConfig;
  /** The learning-rate schedule, and its position (steps this replica took before; resumed from a checkpoint). */
  schedule: ScheduleConfig;
  scheduleStep?: number;
  runtime: RuntimeOptions;
  /** Its weights: trainable ones float32, frozen ones float32 or float16 (weights.ts). */
  params: [string, StoredParam][];
  optimizerState?: OptimizerState;
  /**
   * With several replicas: the strategy whose trunk hook runs on each (FedProx: mu (w - w_round)
   * pulls each replica towards the trunk it started the round from, as clients do with their parts).
   */
  strategy?: StrategyChoice | null;
}

// A trunk replica in its own thread: ONNX Runtime blocks the thread it runs on, so the server's
// gRPC event loop never runs ORT itself. The replica owns its parameters, its optimizer and its
// learning-rate schedule; the main thread sends requests of the table in replica.ts and gets
// results back (transferred, not copied).

const init = workerData as TrunkWorkerInit;
const store: ParamStore = new Map(init.params);
// 'recompute', never 'carry': a carrying executor keeps one saved slot, and in batch mode one
// replica serves interleaved steps of several clients. Activations are kept here, per request key.
const trunk = new PartExecutor('trunk', init.model, init.split, init.peft, store, init.runtime, 'recompute');
const optimizer = createOptimizer(init.optimizer);
if (init.optimizerState) optimizer.load(init.optimizerState);
const saved = new Map<string, { hA: TensorData; masks: DropoutMasks }>();
/** Gradients of a backward waiting for their `apply` (keyed like the saved activations). */
const pending = new Map<string, Map<string, Float32Array>>();
const trainable = () => new Map(trunk.trainable.map((n) => [n, trainableData(store.get(n)!, n)]));
/** The trunk this round started from, refreshed when averaged parameters arrive. */
const snapshot = () => new Map([...trainable()].map(([n, d]) => [n, d.slice()]));
const hook = init.strategy ? createTrunkHalf(init.strategy) : null;
let step = init.scheduleStep ?? 0;
let totalSteps = 0;

/**
 * The trunk and its optimizer as the round started (one more copy of the trainable trunk and its
 * moments): a trunk that goes non-finite is put back to it and never trains on (issue 28).
 */
let roundStart: { params: Map<string, Float32Array>; optimizer: OptimizerState; step: number } | null = null;
const copyState = (s: OptimizerState): OptimizerState => ({
  ...s,
  slots: Object.fromEntries(Object.entries(s.slots).map(([n, arrays]) => [n, arrays.map((a) => a.slice())])),
});
const finite = (params: Map<string, Float32Array>) => {
  for (const d of params.values()) for (let i = 0; i < d.length; i++) if (d[i] - d[i] !== 0) return false;
  return true;
};
function rollBack(): void {
  if (!roundStart) return;
  for (const [n, d] of roundStart.params) store.set(n, { shape: store.get(n)!.shape, data: d.slice() });
  optimizer.load(copyState(roundStart.optimizer));
  step = roundStart.step;
}

type Answer<K extends ReplicaOp> = { result: ReplicaResult<K>; transfer?: ArrayBuffer[] };
const handlers: { [K in ReplicaOp]: (a: ReplicaArgs<K>) => Promise<Answer<K>> | Answer<K> } = {
  async forward({ key, keep, hA }) {
    const masks = keep ? await trunk.newDropoutMasks(hA.shape[0], hA.shape[1]) : {};
    const hB = await trunk.forward(hA, keep, masks);
    if (!finite(new Map([['h_B', hB.data as Float32Array]]))) throw new Error("the trunk's output h_B is not finite");
    if (keep) saved.set(key, { hA, masks });
    const copy = Float32Array.from(hB.data as Float32Array);
    return { result: { dtype: 'float32', shape: hB.shape, data: copy }, transfer: [copy.buffer] };
  },
  async backward({ key, dhB }) {
    const kept = saved.get(key);
    if (!kept) throw new Error(`no forward activations kept for ${key}`);
    saved.delete(key);
    const r = await trunk.backward(kept.hA, dhB, kept.masks);
    hook?.correctGradient?.(r.grads, trainable());
    const gradNorm = globalNorm(r.grads.values());
    // Refused before it is applied: the shared trunk never sees it.
    if (!Number.isFinite(gradNorm)) throw new Error(`the trunk's gradient for this step is not finite (${gradNorm})`);
    pending.set(key, r.grads);
    const dhA = Float32Array.from(r.inputGrad!.data as Float32Array);
    return {
      result: {
        dhA: { dtype: 'float32', shape: r.inputGrad!.shape, data: dhA },
        gradNorm,
      },
      transfer: [dhA.buffer],
    };
  },
  apply({ key, norm }) {
    const grads = pending.get(key);
    if (!grads) throw new Error(`no gradients kept for ${key}`);
    pending.delete(key);
    const lr = learningRate(init.optimizer.lr, init.schedule, step++, totalSteps);
    const params = trainable();
    clipAndApply(optimizer, params, grads, norm, init.optimizer.grad_clip, lr);
    if (!finite(params)) {
      rollBack();
      throw new Error('the trunk went non-finite at this step: it is back at the start of the round');
    }
    return { result: { step } };
  },
  startRound(a) {
    totalSteps = a.totalSteps;
    roundStart = { params: snapshot(), optimizer: copyState(optimizer.state()), step };
    hook?.startRound?.({ params: trainable(), start: snapshot, config: {} });
    return { result: null };
  },
  drop({ key }) {
    saved.delete(key);
    pending.delete(key);
    return { result: null };
  },
  // One copy each way (a trunk copy costs ~65 ms for `small` here): the copy is transferred, not
  // cloned again, and a received set replaces the stored arrays instead of being copied into them
  // (programs read the store at every run; the optimizer keys its moments by name).
  getParams: () => {
    const result: NamedParams = [...trainable()].map(([n, d]) => [n, d.slice()]);
    return { result, transfer: result.map(([, d]) => d.buffer as ArrayBuffer) };
  },
  setParams({ params }) {
    for (const [n, d] of params) {
      const t = store.get(n)!;
      const current = trainableData(t, n);
      if (d.length !== current.length)
        throw new Error(`setParams: ${n} has ${d.length} values, expected ${current.length}`);
      // Shared memory (TrunkPool.average) is every replica's: take a private copy of it.
      store.set(n, { shape: t.shape, data: d.buffer instanceof SharedArrayBuffer ? d.slice() : d });
    }
    return { result: null };
  },
  getState: ({ frozen }) => ({
    result: {
      optimizer: optimizer.state(),
      params: [...store]
        .filter(([n]) => frozen || trunk.trainable.includes(n))
        .map(([n, p]) => [n, { shape: p.shape, data: float32Copy(p) }]),
    },
  }),
};

let queue = Promise.resolve();
parentPort!.on('message', <K extends ReplicaOp>(msg: { id: number; op: K; args: ReplicaArgs<K> }) => {
  // One request at a time: ORT runs serially inside a replica.
  queue = queue.then(async () => {
    try {
      if (!Object.hasOwn(handlers, msg.op)) throw new Error(`unknown request ${String(msg.op)}`);
      const handler = handlers[msg.op] as (a: ReplicaArgs<K>) => Promise<Answer<K>> | Answer<K>;
      const { result, transfer = [] } = await handler(msg.args);
      parentPort!.postMessage({ id: msg.id, ok: true, result }, transfer);
    } catch (e) {
      parentPort!.postMessage({ id: msg.id, ok: false, error: (e as Error).message });
    }
  });
});
