import { CompiledGraph, type RuntimeOptions } from './session.js';
import type { TensorData } from './tensor.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamStore, PeftConfig } from '../model/params.js';
import { buildPartProgram, gradName, trainableNames, type PartName, type ProgramKind, type SplitPoints } from '../model/partition.js';
import { cutAtUpstream } from '../graph/cut.js';

/**
 * How a part's backward gets the forward activations it needs:
 * - recompute: the backward program runs the forward again (costs one more forward);
 * - carry: the training forward also returns the saved activations, fed back to the backward
 *   (costs copying them through JS twice).
 * Measured (`npm run bench -- recompute`, small preset, 8 x 128): the trunk saves ~250 MiB and
 * recomputing is faster; the head saves ~40 MiB and carrying is 1.3x faster. Hence the defaults.
 */
export type ActivationPolicy = 'recompute' | 'carry';
export const DEFAULT_POLICY: Record<PartName, ActivationPolicy> = { head: 'carry', trunk: 'recompute', tail: 'recompute', full: 'recompute' };

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
  private carried = new Map<string, Promise<{ forward: CompiledGraph; backward: CompiledGraph; backwardInputs: string[] }>>();
  /** Activations kept by the last training forward (carry policy), for the matching backward. */
  private saved: Record<string, TensorData> | null = null;
  readonly trainable: string[];
  readonly policy: ActivationPolicy;

  constructor(
    readonly part: PartName,
    readonly config: ModelConfig,
    readonly split: SplitPoints,
    readonly peft: PeftConfig,
    readonly store: ParamStore,
    readonly runtime: RuntimeOptions = {},
    policy?: ActivationPolicy,
  ) {
    this.trainable = trainableNames(part, config, split, store, peft);
    this.policy = policy ?? DEFAULT_POLICY[part];
  }

  private carryPrograms(batch: number, seq: number) {
    const key = `${batch}x${seq}`;
    let p = this.carried.get(key);
    if (!p) {
      const built = buildPartProgram(this.part, 'backward', this.config, this.split, this.peft, this.store, batch, seq);
      const upstream = built.graph.inputs.find((v) => v.name.startsWith('grad_'))!;
      const cut = cutAtUpstream(built.graph, upstream, [built.forwardOutput]);
      cut.forward.outputs[0].name = this.outputName();
      p = Promise.all([CompiledGraph.create(cut.forward, this.runtime), CompiledGraph.create(cut.backward, this.runtime)]).then(([forward, backward]) => ({ forward, backward, backwardInputs: cut.backward.inputs.map((v) => v.name) }));
      this.carried.set(key, p);
    }
    return p;
  }

  private outputName(): string {
    return this.part === 'head' ? 'h_A' : 'h_B';
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

  /** Head/trunk forward. `training` marks a forward whose backward follows (carry policy keeps activations). */
  async forward(input: TensorData, training = false): Promise<TensorData> {
    if (training && this.policy === 'carry') {
      const { forward } = await this.carryPrograms(...this.dims(input));
      this.saved = await forward.run({ [this.inputName()]: input, ...this.paramFeeds() });
      return this.saved[this.outputName()];
    }
    const session = await this.program('forward', ...this.dims(input));
    const out = await session.run({ [this.inputName()]: input, ...this.paramFeeds() });
    return out[this.outputName()];
  }

  /** Head/trunk backward of the last training forward on `input`, back-propagating `upstream`. */
  async backward(input: TensorData, upstream: TensorData): Promise<StepResult> {
    const upstreamName = this.part === 'head' ? 'grad_h_A' : 'grad_h_B';
    let out: Record<string, TensorData>;
    if (this.policy === 'carry') {
      if (!this.saved) throw new Error(`${this.part} backward without a training forward before it`);
      const { backward, backwardInputs } = await this.carryPrograms(...this.dims(input));
      const params = this.paramFeeds();
      const feeds: Record<string, TensorData> = {};
      for (const name of backwardInputs) feeds[name] = name === upstreamName ? upstream : name === this.inputName() ? input : this.saved[name] ?? params[name];
      out = await backward.run(feeds);
      this.saved = null;
    } else {
      const session = await this.program('backward', ...this.dims(input));
      out = await session.run({ [this.inputName()]: input, [upstreamName]: upstream, ...this.paramFeeds() });
    }
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
    for (const p of this.carried.values()) { const c = await p; await c.forward.release(); await c.backward.release(); }
    this.programs.clear();
    this.carried.clear();
  }
}
