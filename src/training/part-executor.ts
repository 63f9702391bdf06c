import { CompiledGraph, type RuntimeOptions } from '../runtime/session.js';
import type { TensorData } from '../runtime/tensor.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamStore, PeftConfig } from '../model/params.js';
import {
  buildPartProgram,
  gradName,
  trainableNames,
  type PartName,
  type ProgramKind,
  type SplitPoints,
} from '../model/partition.js';
import { cutAtUpstream } from '../graph/cut.js';
import { storedFeed } from '../model/graph-weights.js';
import { Rng } from '../util/rng.js';

/**
 * How a part's backward gets the forward activations it needs:
 * - recompute: the backward program runs the forward again (costs one more forward);
 * - carry: the training forward also returns the saved activations, fed back to the backward
 *   (costs copying them through JS twice).
 * Measured (small preset, 8 x 128, forward + backward, 2 threads without spinning as federated
 * processes run, 20-30 interleaved pairs, 2026-12-02): trunk 214 ms recomputing against 239 ms
 * carrying its 215 MiB; head 37-42 ms against 39-47 ms carrying 36 MiB. Recomputing is as fast or
 * faster and keeps nothing between the runs, hence the default everywhere. (On ORT's default of
 * one thread here, before runtime/threads.ts, the head carried 1.3x faster: compute cost 1.5x
 * more, the copies the same.)
 */
export type ActivationPolicy = 'recompute' | 'carry';
export const DEFAULT_POLICY: Record<PartName, ActivationPolicy> = {
  head: 'recompute',
  trunk: 'recompute',
  tail: 'recompute',
  full: 'recompute',
};

/** LoRA dropout masks of one training step, shared by its forward and backward. */
export type DropoutMasks = Record<string, TensorData>;

export interface StepResult {
  loss: number;
  inputGrad?: TensorData;
  grads: Map<string, Float32Array>;
}

/**
 * Runs one part of the model (head, trunk, tail or full) on ONNX Runtime: compiles each program
 * once per [batch, seq] and feeds it what it declares (input, upstream gradient, labels, current
 * trainable parameters, dropout masks).
 */
export class PartExecutor {
  private programs = new Map<string, Promise<CompiledGraph>>();
  private carried = new Map<string, Promise<{ forward: CompiledGraph; backward: CompiledGraph }>>();
  /** Activations kept by the last training forward (carry policy), for the matching backward. */
  private saved: Record<string, TensorData> | null = null;
  private readonly dropoutRng: Rng;
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
    seed = 0,
  ) {
    this.trainable = trainableNames(part, config, split, store, peft);
    this.policy = policy ?? DEFAULT_POLICY[part];
    this.dropoutRng = new Rng(seed + 7919 * ['head', 'trunk', 'tail', 'full'].indexOf(part));
  }

  private get usesDropout(): boolean {
    return this.peft.method === 'lora' && this.peft.lora.dropout > 0;
  }

  private program(kind: ProgramKind, batch: number, seq: number, training = false): Promise<CompiledGraph> {
    const key = `${kind}:${batch}x${seq}:${training}`;
    let p = this.programs.get(key);
    if (!p) {
      const built = buildPartProgram(this.part, kind, this.config, this.split, this.peft, this.store, batch, seq, {
        training,
      });
      p = CompiledGraph.create(built.graph, this.runtime);
      this.programs.set(key, p);
    }
    return p;
  }

  private carryPrograms(batch: number, seq: number) {
    const key = `${batch}x${seq}`;
    let p = this.carried.get(key);
    if (!p) {
      const built = buildPartProgram(this.part, 'backward', this.config, this.split, this.peft, this.store, batch, seq);
      const upstream = built.graph.inputs.find((v) => v.name.startsWith('grad_'))!;
      const cut = cutAtUpstream(built.graph, upstream, [built.forwardOutput]);
      cut.forward.outputs[0].name = this.outputName();
      p = Promise.all([
        CompiledGraph.create(cut.forward, this.runtime),
        CompiledGraph.create(cut.backward, this.runtime),
      ]).then(([forward, backward]) => ({ forward, backward }));
      this.carried.set(key, p);
    }
    return p;
  }

  private outputName(): string {
    return this.part === 'head' ? 'h_A' : 'h_B';
  }

  private inputName(): string {
    return this.part === 'head' || this.part === 'full' ? 'tokens' : this.part === 'trunk' ? 'h_A' : 'h_B';
  }

  /** Run a program with the feeds it declares, taken from a pool of named tensors. */
  private run(session: CompiledGraph, pool: Record<string, TensorData>): Promise<Record<string, TensorData>> {
    const feeds: Record<string, TensorData> = {};
    for (const spec of session.inputs) {
      const t = pool[spec.name] ?? this.paramFeed(spec.name);
      if (t) feeds[spec.name] = t;
    }
    return session.run(feeds);
  }

  /** Trainable and frozen weights alike are graph inputs, read from the store at every run (see graph-weights.ts). */
  private paramFeed(name: string): TensorData | undefined {
    return storedFeed(this.store, name);
  }

  private dims(input: TensorData): [number, number] {
    return [input.shape[0], input.shape[1]];
  }

  private collectGrads(out: Record<string, TensorData>): Map<string, Float32Array> {
    return new Map(this.trainable.map((n) => [n, out[gradName(n)].data as Float32Array]));
  }

  /**
   * Fresh LoRA dropout masks for one training step of this part (empty without dropout). Pass the
   * same masks to the step's forward and backward so both passes drop the same units.
   */
  async newDropoutMasks(batch: number, seq: number): Promise<DropoutMasks> {
    if (!this.usesDropout) return {};
    const kind = this.part === 'tail' || this.part === 'full' ? 'step' : 'backward';
    const session = await this.program(kind, batch, seq);
    const p = this.peft.lora.dropout;
    const masks: DropoutMasks = {};
    for (const spec of session.inputs.filter((s) => s.name.startsWith('lora_dropout.'))) {
      const data = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < data.length; i++) data[i] = this.dropoutRng.uniform() < p ? 0 : 1 / (1 - p);
      masks[spec.name] = { dtype: 'float32', shape: [...spec.shape], data };
    }
    return masks;
  }

  /** Head/trunk forward. `training` marks a forward whose backward follows (dropout, carried activations). */
  async forward(input: TensorData, training = false, masks: DropoutMasks = {}): Promise<TensorData> {
    const pool = { [this.inputName()]: input, ...masks };
    if (training && this.policy === 'carry') {
      const { forward } = await this.carryPrograms(...this.dims(input));
      this.saved = await this.run(forward, pool);
      return this.saved[this.outputName()];
    }
    const out = await this.run(await this.program('forward', ...this.dims(input), training && this.usesDropout), pool);
    return out[this.outputName()];
  }

  /** Head/trunk backward of the last training forward on `input`, back-propagating `upstream`. */
  async backward(input: TensorData, upstream: TensorData, masks: DropoutMasks = {}): Promise<StepResult> {
    const pool = { [this.inputName()]: input, [this.part === 'head' ? 'grad_h_A' : 'grad_h_B']: upstream, ...masks };
    let out: Record<string, TensorData>;
    if (this.policy === 'carry') {
      if (!this.saved) throw new Error(`${this.part} backward without a training forward before it`);
      const { backward } = await this.carryPrograms(...this.dims(input));
      out = await this.run(backward, { ...this.saved, ...pool });
      this.saved = null;
    } else {
      out = await this.run(await this.program('backward', ...this.dims(input)), pool);
    }
    return { loss: NaN, grads: this.collectGrads(out), inputGrad: this.part === 'trunk' ? out.grad_h_A : undefined };
  }

  /** Tail/full: forward, loss and backward in one run (fresh dropout masks unless given). */
  async step(input: TensorData, labels: TensorData, masks?: DropoutMasks): Promise<StepResult> {
    const m = masks ?? (await this.newDropoutMasks(...this.dims(input)));
    const out = await this.run(await this.program('step', ...this.dims(input)), {
      [this.inputName()]: input,
      labels,
      ...m,
    });
    return {
      loss: Number(out.loss.data[0]),
      grads: this.collectGrads(out),
      inputGrad: this.part === 'tail' ? out.grad_h_B : undefined,
    };
  }

  async evaluate(input: TensorData, labels: TensorData): Promise<{ loss: number; pred: BigInt64Array }> {
    const out = await this.run(await this.program('eval', ...this.dims(input)), { [this.inputName()]: input, labels });
    return { loss: Number(out.loss.data[0]), pred: out.pred.data as BigInt64Array };
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    for (const p of this.carried.values()) {
      const c = await p;
      await c.forward.release();
      await c.backward.release();
    }
    this.programs.clear();
    this.carried.clear();
  }
}
