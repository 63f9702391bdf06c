import type { TensorData } from '../runtime/tensor.js';
import type { OptimizerState } from '../runtime/optimizer.js';

/** A trunk replica as the server uses it: in a local worker thread or on a remote sub-server. */
export interface Replica {
  readonly label: string;
  /** h_A -> h_B. With `keep`, the replica keeps h_A for the backward of the same key. */
  forward(key: string, hA: TensorData, keep: boolean): Promise<TensorData>;
  /**
   * dL/dh_B -> dL/dh_A and the L2 norm of the trunk's parameter gradients, which the replica keeps
   * until `apply`: the clipping scale may depend on the client's gradient norm too (one model, one
   * global norm, as in centralized training).
   */
  backward(key: string, dhB: TensorData): Promise<{ dhA: TensorData; gradNorm: number }>;
  /** One optimizer step with the gradients kept for `key`, multiplied by `scale`, at learning rate `lr`. */
  apply(key: string, lr: number, scale: number): Promise<void>;
  drop(key: string): Promise<void>;
  getParams(): Promise<[string, Float32Array][]>;
  setParams(params: [string, Float32Array][]): Promise<void>;
  getState(): Promise<{ optimizer: OptimizerState; params: [string, { shape: number[]; data: Float32Array }][] }>;
  close(): Promise<void>;
}
