import { Graph, type DType, type Value } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import { gradients } from '../../src/graph/autodiff.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import type { TensorData } from '../../src/runtime/tensor.js';
import { Rng } from '../../src/util/rng.js';

export interface GradInput {
  name: string;
  shape: number[];
  dtype?: DType;
  /** Fixed data (e.g. integer indices); otherwise uniform random in [lo, hi]. */
  data?: TensorData['data'];
  range?: [number, number];
  /** Integer/frozen inputs are fed but not differentiated. */
  noGrad?: boolean;
}

export interface GradCheckResult {
  maxAbsError: number;
  maxRelError: number;
  worst: string;
}

/**
 * Compare autodiff gradients with central finite differences of L = sum(f(inputs) * W) for a
 * random W. Float64 by default so the differences are accurate.
 */
export async function gradCheck(
  build: (inputs: Value[]) => Value,
  specs: GradInput[],
  opts: {
    dtype?: DType;
    eps?: number;
    seed?: number;
    /** The function the finite differences are taken of, where `build`'s own is not smooth (a straight-through rule). */
    reference?: (inputs: Value[]) => Value;
  } = {},
): Promise<GradCheckResult> {
  const dtype = opts.dtype ?? 'float64';
  const eps = opts.eps ?? (dtype === 'float64' ? 1e-6 : 1e-2);
  const rng = new Rng(opts.seed ?? 1);
  const g = new Graph('gradcheck');
  const inputs = specs.map((s) => g.input(s.name, s.dtype ?? dtype, s.shape));
  const out = build(inputs);
  const weights = g.input('W', out.dtype, out.shape);
  const loss = op.reduceSum(
    op.mul(out, weights),
    out.shape.map((_, i) => i),
    false,
  );
  g.output(loss, 'loss');
  const diffInputs = inputs.filter((_, i) => !specs[i].noGrad);
  const grads = gradients([loss], [null], diffInputs);
  grads.forEach((gr, i) => {
    if (!gr) throw new Error(`no gradient reached ${diffInputs[i].name}`);
    g.output(gr, `grad_${diffInputs[i].name}`);
  });
  const session = await CompiledGraph.create(g, { threads: 1 });
  const forward = new Graph('forward');
  const fIn = specs.map((s) => forward.input(s.name, s.dtype ?? dtype, s.shape));
  const fOut = (opts.reference ?? build)(fIn);
  const fW = forward.input('W', fOut.dtype, fOut.shape);
  forward.output(
    op.reduceSum(
      op.mul(fOut, fW),
      fOut.shape.map((_, i) => i),
      false,
    ),
    'loss',
  );
  const fSession = await CompiledGraph.create(forward, { threads: 1 });

  const mk = (d: DType, n: number, lo: number, hi: number) => {
    const a = d === 'float64' ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.uniform();
    return a;
  };
  const feeds: Record<string, TensorData> = {};
  specs.forEach((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const [lo, hi] = s.range ?? [-1, 1];
    feeds[s.name] = { dtype: inputs[i].dtype, shape: s.shape, data: s.data ?? mk(inputs[i].dtype, n, lo, hi) };
  });
  feeds.W = { dtype: out.dtype, shape: out.shape, data: mk(out.dtype, out.size, -1, 1) };

  const analytic = await session.run(feeds);
  let maxAbsError = 0,
    maxRelError = 0,
    worst = '';
  for (const s of specs) {
    if (s.noGrad) continue;
    const data = feeds[s.name].data as Float64Array;
    const ga = analytic[`grad_${s.name}`].data as Float64Array;
    for (let k = 0; k < data.length; k++) {
      const orig = data[k];
      data[k] = orig + eps;
      const lp = Number((await fSession.run(feeds)).loss.data[0]);
      data[k] = orig - eps;
      const lm = Number((await fSession.run(feeds)).loss.data[0]);
      data[k] = orig;
      const numeric = (lp - lm) / (2 * eps);
      const abs = Math.abs(numeric - ga[k]);
      const rel = abs / Math.max(1e-3, Math.abs(numeric) + Math.abs(ga[k]));
      if (abs > maxAbsError) maxAbsError = abs;
      if (rel > maxRelError) {
        maxRelError = rel;
        worst = `${s.name}[${k}] numeric=${numeric} analytic=${ga[k]}`;
      }
    }
  }
  await session.release();
  await fSession.release();
  return { maxAbsError, maxRelError, worst };
}

/**
 * A whole model's gradients against finite differences of its loss, along `trials` random unit
 * directions that mix the gradient with noise (a directional derivative large enough to measure in
 * float32, a step small enough to stay linear). The relative error of each.
 */
export async function directionalErrors(
  ex: { evaluate(tokens: TensorData, labels: TensorData): Promise<{ loss: number }> },
  store: Map<string, { data?: Float32Array }>,
  grads: Map<string, Float32Array>,
  tokens: TensorData,
  labels: TensorData,
  trials: number,
  seed: number,
  eps = 1e-2,
): Promise<number[]> {
  const rng = new Rng(seed);
  const norm = (m: Iterable<Float32Array>) =>
    Math.sqrt([...m].reduce((a, g) => a + g.reduce((s, x) => s + x * x, 0), 0));
  const errors: number[] = [];
  for (let trial = 0; trial < trials; trial++) {
    const gNorm = norm(grads.values());
    const noise = new Map([...grads].map(([n, g]) => [n, Float32Array.from(g, () => rng.normal())]));
    const rNorm = norm(noise.values());
    const dirs = new Map(
      [...grads].map(([n, g]) => [
        n,
        Float32Array.from(g, (x, i) => (x / gNorm + noise.get(n)![i] / rNorm) / Math.SQRT2),
      ]),
    );
    let predicted = 0;
    for (const [n, g] of grads) for (let i = 0; i < g.length; i++) predicted += g[i] * dirs.get(n)![i];
    const shift = (sign: number) => {
      for (const [n, u] of dirs) {
        const p = store.get(n)!.data!;
        for (let i = 0; i < p.length; i++) p[i] += sign * eps * u[i];
      }
    };
    shift(1);
    const lp = (await ex.evaluate(tokens, labels)).loss;
    shift(-2);
    const lm = (await ex.evaluate(tokens, labels)).loss;
    shift(1);
    errors.push(Math.abs((lp - lm) / (2 * eps) - predicted) / Math.abs(predicted));
  }
  return errors;
}
