import type { TensorData } from '../runtime/tensor.js';
import type { OptimizerState } from '../training/optimizer.js';

export type NamedParams = [string, Float32Array][];
/** A replica's state for a checkpoint: its optimizer and its trunk tensors (frozen ones too, unless left out). */
export interface ReplicaState {
  optimizer: OptimizerState;
  params: [string, { shape: number[]; data: Float32Array }][];
}

/**
 * Every request a trunk replica serves, as [arguments, result]: the one table that the worker
 * thread (`trunk-worker.ts`, which implements it), its main-thread handle (`trunk-replica.ts`) and
 * the sub-server link (`remote-replica.ts` / `sub-server.ts`, which carry it over gRPC) all follow.
 * A new request is one line here and one handler in the worker.
 */
export interface ReplicaOps {
  /** h_A -> h_B. With `keep`, the replica keeps h_A for the backward of the same key. */
  forward: [{ key: string; keep: boolean; hA: TensorData }, TensorData];
  /**
   * dL/dh_B -> dL/dh_A and the L2 norm of the trunk's parameter gradients, which the replica keeps
   * until `apply`: the clipping scale may depend on the client's gradient norm too (one model, one
   * global norm, as in centralized training).
   */
  backward: [{ key: string; dhB: TensorData }, { dhA: TensorData; gradNorm: number }];
  /**
   * One optimizer step with the gradients kept for `key`, clipped by the model's global gradient
   * norm `norm` (the trunk's own, or joint with the client's), at the learning rate of the
   * replica's own schedule; returns the schedule's position after it (steps taken).
   */
  apply: [{ key: string; norm: number }, { step: number }];
  /**
   * A training round begins: the schedule's length over the federation (`totalSteps`, which
   * depends on the round's clients), and the strategy's trunk hook restarts from the trunk as it is.
   */
  startRound: [{ totalSteps: number }, null];
  /** Forget what is kept for `key` (its client was dropped mid-step). */
  drop: [{ key: string }, null];
  getParams: [Record<string, never>, NamedParams];
  setParams: [{ params: NamedParams }, null];
  /** `frozen: false` leaves out the weights that do not train (a checkpoint that reads them from the base model). */
  getState: [{ frozen: boolean }, ReplicaState];
}
export type ReplicaOp = keyof ReplicaOps;
export type ReplicaArgs<K extends ReplicaOp> = ReplicaOps[K][0];
export type ReplicaResult<K extends ReplicaOp> = ReplicaOps[K][1];

/** A trunk replica as the server uses it: in a local worker thread or on a remote sub-server. */
export interface Replica {
  readonly label: string;
  forward(key: string, hA: TensorData, keep: boolean): Promise<TensorData>;
  backward(key: string, dhB: TensorData): Promise<{ dhA: TensorData; gradNorm: number }>;
  apply(key: string, norm: number): Promise<{ step: number }>;
  startRound(totalSteps: number): Promise<void>;
  drop(key: string): Promise<void>;
  getParams(): Promise<NamedParams>;
  setParams(params: NamedParams): Promise<void>;
  getState(frozen?: boolean): Promise<ReplicaState>;
  close(): Promise<void>;
}

/** A Replica whose methods are requests of the table above over some transport. */
export abstract class RequestReplica implements Replica {
  abstract readonly label: string;
  abstract request<K extends ReplicaOp>(op: K, args: ReplicaArgs<K>): Promise<ReplicaResult<K>>;
  abstract close(): Promise<void>;

  forward(key: string, hA: TensorData, keep: boolean): Promise<TensorData> {
    return this.request('forward', { key, keep, hA });
  }
  backward(key: string, dhB: TensorData): Promise<{ dhA: TensorData; gradNorm: number }> {
    return this.request('backward', { key, dhB });
  }
  apply(key: string, norm: number): Promise<{ step: number }> {
    return this.request('apply', { key, norm });
  }
  async startRound(totalSteps: number): Promise<void> {
    await this.request('startRound', { totalSteps });
  }
  async drop(key: string): Promise<void> {
    await this.request('drop', { key });
  }
  getParams(): Promise<NamedParams> {
    return this.request('getParams', {});
  }
  async setParams(params: NamedParams): Promise<void> {
    await this.request('setParams', { params });
  }
  getState(frozen = true): Promise<ReplicaState> {
    return this.request('getState', { frozen });
  }
}
