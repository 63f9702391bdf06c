import { Graph } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { gradients } from '../graph/autodiff.js';
import { CompiledGraph, type RuntimeOptions } from '../runtime/session.js';
import { tensor } from '../runtime/tensor.js';
import { AdamW } from '../training/optimizer.js';
import { Rng } from '../util/rng.js';

/**
 * The inversion model of the honest-but-curious server's attack: a per-position classifier from an
 * activation h_A[t] (D numbers) to the token at t, an MLP (D -> H, SiLU, H -> V) trained with
 * flglm's own training core on (h_A, token) pairs the attacker makes from public text. With causal
 * attention h_A[t] carries token t through the residual stream, which is what makes shallow cuts
 * invertible; noise on h_A is what the defence adds. Inputs are standardised per dimension with the
 * training pairs' statistics (activations after one block are ~0.02 in scale).
 */
export interface InverterOptions {
  hidden: number;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  runtime?: RuntimeOptions;
}

export const DEFAULT_INVERTER: InverterOptions = { hidden: 512, steps: 600, batch: 512, lr: 2e-3, seed: 7 };

type Weights = Map<string, Float32Array>;

/** The MLP's weights as graph feeds: D -> H, H -> V, with their biases. */
function weightFeeds(weights: Weights, d: number, h: number, v: number) {
  const shapes: Record<string, number[]> = { w1: [d, h], b1: [h], w2: [h, v], b2: [v] };
  return Object.fromEntries([...weights].map(([n, data]) => [n, tensor('float32', shapes[n], data)]));
}

function mlp(g: Graph, x: ReturnType<Graph['input']>, d: number, h: number, v: number) {
  const w = {
    w1: g.input('w1', 'float32', [d, h]),
    b1: g.input('b1', 'float32', [h]),
    w2: g.input('w2', 'float32', [h, v]),
    b2: g.input('b2', 'float32', [v]),
  };
  const z = op.add(op.matmul(x, w.w1), w.b1);
  return { w, logits: op.add(op.matmul(op.mul(z, op.sigmoid(z)), w.w2), w.b2) };
}

export class Inverter {
  private constructor(
    readonly dim: number,
    readonly vocab: number,
    readonly hidden: number,
    private readonly weights: Weights,
    private readonly mean: Float32Array,
    private readonly scale: Float32Array,
    private readonly predictProgram: CompiledGraph,
    private readonly rows: number,
  ) {}

  /** Train on `count` pairs: activations [count, dim] and their token ids. */
  static async train(
    acts: Float32Array,
    ids: Int32Array,
    dim: number,
    vocab: number,
    o: InverterOptions = DEFAULT_INVERTER,
  ): Promise<{ inverter: Inverter; losses: number[] }> {
    const count = ids.length;
    const { mean, scale } = standardisation(acts, count, dim);
    const rng = new Rng(o.seed);
    const init = (n: number, std: number) => Float32Array.from({ length: n }, () => std * rng.normal());
    const weights: Weights = new Map([
      ['w1', init(dim * o.hidden, 1 / Math.sqrt(dim))],
      ['b1', new Float32Array(o.hidden)],
      ['w2', init(o.hidden * vocab, 1 / Math.sqrt(o.hidden))],
      ['b2', new Float32Array(vocab)],
    ]);
    const g = new Graph('inverter_step');
    const x = g.input('x', 'float32', [o.batch, dim]);
    const labels = g.input('labels', 'int64', [o.batch]);
    const { w, logits } = mlp(g, x, dim, o.hidden, vocab);
    const [loss] = op.softmaxCrossEntropy(logits, labels);
    g.output(loss, 'loss');
    const wrt = [w.w1, w.b1, w.w2, w.b2];
    gradients([loss], [null], wrt).forEach((gr, i) => g.output(gr!, `grad.${wrt[i].name}`));
    const step = await CompiledGraph.create(g, o.runtime);
    const optimizer = new AdamW({
      name: 'adamw',
      lr: o.lr,
      weight_decay: 0,
      betas: [0.9, 0.999],
      eps: 1e-8,
      momentum: 0,
      grad_clip: 0,
      grad_accum: 1,
    });
    const xb = new Float32Array(o.batch * dim),
      yb = new BigInt64Array(o.batch);
    const losses: number[] = [];
    for (let s = 0; s < o.steps; s++) {
      for (let r = 0; r < o.batch; r++) {
        const k = rng.int(count);
        for (let j = 0; j < dim; j++) xb[r * dim + j] = (acts[k * dim + j] - mean[j]) * scale[j];
        yb[r] = BigInt(ids[k]);
      }
      const feeds = {
        x: tensor('float32', [o.batch, dim], xb),
        labels: tensor('int64', [o.batch], yb),
        ...weightFeeds(weights, dim, o.hidden, vocab),
      };
      const out = await step.run(feeds);
      losses.push(Number(out.loss.data[0]));
      const lr = o.lr * (0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * s) / o.steps))); // cosine to 0.1x
      optimizer.apply(weights, new Map([...weights.keys()].map((n) => [n, out[`grad.${n}`].data as Float32Array])), lr);
    }
    await step.release();
    const rows = o.batch;
    const pg = new Graph('inverter_predict');
    const px = pg.input('x', 'float32', [rows, dim]);
    pg.output(op.argMax(mlp(pg, px, dim, o.hidden, vocab).logits, 1), 'pred');
    const predict = await CompiledGraph.create(pg, o.runtime);
    return { inverter: new Inverter(dim, vocab, o.hidden, weights, mean, scale, predict, rows), losses };
  }

  /** The most likely token at each of `count` positions ([count, dim] activations). */
  async predict(acts: Float32Array, count: number): Promise<Int32Array> {
    const { dim, rows } = this;
    const out = new Int32Array(count);
    const xb = new Float32Array(rows * dim);
    const wf = weightFeeds(this.weights, dim, this.hidden, this.vocab);
    for (let start = 0; start < count; start += rows) {
      const n = Math.min(rows, count - start);
      xb.fill(0);
      for (let r = 0; r < n; r++)
        for (let j = 0; j < dim; j++) xb[r * dim + j] = (acts[(start + r) * dim + j] - this.mean[j]) * this.scale[j];
      const pred = (await this.predictProgram.run({ x: tensor('float32', [rows, dim], xb), ...wf })).pred
        .data as BigInt64Array;
      for (let r = 0; r < n; r++) out[start + r] = Number(pred[r]);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.predictProgram.release();
  }
}

function standardisation(acts: Float32Array, count: number, dim: number): { mean: Float32Array; scale: Float32Array } {
  const mean = new Float32Array(dim),
    sq = new Float64Array(dim);
  for (let k = 0; k < count; k++) for (let j = 0; j < dim; j++) mean[j] += acts[k * dim + j] / count;
  for (let k = 0; k < count; k++)
    for (let j = 0; j < dim; j++) {
      const c = acts[k * dim + j] - mean[j];
      sq[j] += (c * c) / count;
    }
  return { mean, scale: Float32Array.from(sq, (v) => 1 / Math.sqrt(v + 1e-12)) };
}
