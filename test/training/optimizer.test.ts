import { AdamW, SGD, clipAndApply, globalNorm, type OptimizerConfig } from '../../src/training/optimizer.js';

const config: OptimizerConfig = {
  name: 'adamw',
  lr: 1e-2,
  weight_decay: 0.1,
  betas: [0.9, 0.99],
  eps: 1e-8,
  momentum: 0.9,
  grad_clip: 1,
  grad_accum: 1,
};

/** AdamW as PyTorch defines it (decoupled decay, bias-corrected moments), in float64. */
function referenceAdamW(p0: number[], grads: number[][], lrs: number[], c = config): number[] {
  const [b1, b2] = c.betas;
  const p = [...p0],
    m = p.map(() => 0),
    v = p.map(() => 0);
  grads.forEach((g, k) => {
    const t = k + 1,
      lr = lrs[k];
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * c.weight_decay;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= (lr * (m[i] / (1 - b1 ** t))) / (Math.sqrt(v[i] / (1 - b2 ** t)) + c.eps);
    }
  });
  return p;
}

const start = [0.5, -1.25, 2, 0.001, -0.3];
const steps = [
  [0.1, -0.2, 0.3, 1e-4, -2],
  [0.05, 0.4, -0.1, 3e-5, 1],
  [-0.3, 0.1, 0.2, -2e-4, 0.5],
];

describe('optimizers', () => {
  test('AdamW follows the reference update over several steps with changing learning rates', () => {
    const params = new Map([['w', Float32Array.from(start)]]);
    const opt = new AdamW(config);
    const lrs = [1e-2, 5e-3, 2e-3];
    steps.forEach((g, k) => opt.apply(params, new Map([['w', Float32Array.from(g)]]), lrs[k]));
    const want = referenceAdamW(start, steps, lrs);
    params.get('w')!.forEach((x, i) => expect(x).toBeCloseTo(want[i], 6));
    expect(opt.step).toBe(3);
  });

  test('clipAndApply scales the gradients by maxNorm / norm inside the update and leaves them as they were', () => {
    const params = new Map([['w', Float32Array.from(start)]]);
    const g = Float32Array.from(steps[0]);
    const norm = globalNorm([g]);
    expect(norm).toBeGreaterThan(config.grad_clip);
    clipAndApply(new AdamW(config), params, new Map([['w', g]]), norm, config.grad_clip, 1e-2);
    expect(Array.from(g)).toEqual(Array.from(Float32Array.from(steps[0])));
    const scaled = steps[0].map((x) => (x * config.grad_clip) / (norm + 1e-6));
    const want = referenceAdamW(start, [scaled], [1e-2]);
    params.get('w')!.forEach((x, i) => expect(x).toBeCloseTo(want[i], 6));
    // Within the limit nothing is scaled.
    const unclipped = new Map([['w', Float32Array.from(start)]]);
    clipAndApply(
      new AdamW(config),
      unclipped,
      new Map([['w', Float32Array.from(steps[0])]]),
      0.5,
      config.grad_clip,
      1e-2,
    );
    const plain = referenceAdamW(start, [steps[0]], [1e-2]);
    unclipped.get('w')!.forEach((x, i) => expect(x).toBeCloseTo(plain[i], 6));
  });

  test('SGD with momentum and L2 decay, scaled gradients included', () => {
    const params = new Map([['w', Float32Array.from(start)]]);
    const opt = new SGD({ ...config, name: 'sgd' });
    opt.apply(params, new Map([['w', Float32Array.from(steps[0])]]), 0.1, 0.5);
    opt.apply(params, new Map([['w', Float32Array.from(steps[1])]]), 0.1);
    const p = [...start],
      buf = p.map(() => 0);
    [
      [steps[0], 0.5],
      [steps[1], 1],
    ].forEach(([g, s]) => {
      for (let i = 0; i < p.length; i++) {
        buf[i] = 0.9 * buf[i] + (g as number[])[i] * (s as number) + 0.1 * p[i];
        p[i] -= 0.1 * buf[i];
      }
    });
    params.get('w')!.forEach((x, i) => expect(x).toBeCloseTo(p[i], 6));
  });
});
