import { CompiledGraph, type RuntimeOptions } from './session.js';
import type { TensorData } from './tensor.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamStore, PeftConfig } from '../model/params.js';
import { buildPartProgram, gradName, trainableNames, type PartName, type ProgramKind, type SplitPoints } from '../model/partition.js';

export interface StepResult {
  loss: number;
  inputGrad?: TensorData;
  grads: Map<string, Float32Array>;
}

/**
 * Runs one part of the model (head, trunk, tail or full) on ONNX Runtime: compiles each program
 * once per [batch, seq] and feeds the current trainable parameters from the store.
 */
export class PartExecutor {
  private programs = new Map<string, Promise<CompiledGraph>>();
  readonly trainable: string[];

  constructor(
    readonly part: PartName,
    readonly config: ModelConfig,
    readonly split: SplitPoints,
    readonly peft: PeftConfig,
    readonly store: ParamStore,
    readonly runtime: RuntimeOptions = {},
  ) {
    this.trainable = trainableNames(part, config, split, store, peft);
  }

  private program(kind: ProgramKind, batch: number, seq: number): Promise<CompiledGraph> {
    const key = `${kind}:${batch}x${seq}`;
    let p = this.programs.get(key);
    if (!p) {
      const built = buildPartProgram(this.part, kind, this.config, this.split, this.peft, this.store, batch, seq);
      p = CompiledGraph.create(built.graph, this.runtime);
      this.programs.set(key, p);
    }
    return p;
  }

  private paramFeeds(): Record<string, TensorData> {
    const feeds: Record<string, TensorData> = {};
    for (const name of this.trainable) {
      const p = this.store.get(name)!;
      feeds[name] = { dtype: 'float32', shape: p.shape, data: p.data };
    }
    return feeds;
  }

  private inputName(): string {
    return this.part === 'head' || this.part === 'full' ? 'tokens' : this.part === 'trunk' ? 'h_A' : 'h_B';
  }

  private dims(input: TensorData): [number, number] {
    return [input.shape[0], input.shape[1]];
  }

  private collectGrads(out: Record<string, TensorData>): Map<string, Float32Array> {
    return new Map(this.trainable.map((n) => [n, out[gradName(n)].data as Float32Array]));
  }

  async forward(input: TensorData): Promise<TensorData> {
    const session = await this.program('forward', ...this.dims(input));
    const out = await session.run({ [this.inputName()]: input, ...this.paramFeeds() });
    return out[this.part === 'head' ? 'h_A' : 'h_B'];
  }

  /** Head/trunk backward: recomputes the forward from `input`, then back-propagates `upstream`. */
  async backward(input: TensorData, upstream: TensorData): Promise<StepResult> {
    const session = await this.program('backward', ...this.dims(input));
    const upstreamName = this.part === 'head' ? 'grad_h_A' : 'grad_h_B';
    const out = await session.run({ [this.inputName()]: input, [upstreamName]: upstream, ...this.paramFeeds() });
    return { loss: NaN, grads: this.collectGrads(out), inputGrad: this.part === 'trunk' ? out.grad_h_A : undefined };
  }

  /** Tail/full: forward, loss and backward in one run. */
  async step(input: TensorData, labels: TensorData): Promise<StepResult> {
    const session = await this.program('step', ...this.dims(input));
    const out = await session.run({ [this.inputName()]: input, labels, ...this.paramFeeds() });
    return { loss: Number(out.loss.data[0]), grads: this.collectGrads(out), inputGrad: this.part === 'tail' ? out.grad_h_B : undefined };
  }

  async evaluate(input: TensorData, labels: TensorData): Promise<{ loss: number; pred: BigInt64Array }> {
    const session = await this.program('eval', ...this.dims(input));
    const out = await session.run({ [this.inputName()]: input, labels, ...this.paramFeeds() });
    return { loss: Number(out.loss.data[0]), pred: out.pred.data as BigInt64Array };
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
  }
}
