import { ActivationNoise } from '../../src/privacy/activation-noise.js';
import { config, federate } from '../helpers/federation.js';

test('activation noise: N(0, sigma^2) on a copy, seeded per client; sigma 0 sends the tensor untouched', () => {
  const t = { dtype: 'float32' as const, shape: [1000, 100], data: new Float32Array(100000).fill(1) };
  const noisy = new ActivationNoise(0.2, false, 7, 'alice').apply(t);
  const d = noisy.data as Float32Array;
  const mean = d.reduce((a, x) => a + x, 0) / d.length;
  const sd = Math.sqrt(d.reduce((a, x) => a + (x - mean) ** 2, 0) / d.length);
  expect(mean).toBeCloseTo(1, 2);
  expect(sd).toBeCloseTo(0.2, 2);
  expect((t.data as Float32Array).every((x) => x === 1)).toBe(true); // the client's own h_A stays clean
  expect(new ActivationNoise(0.2, false, 7, 'alice').apply(t).data).toEqual(d);
  expect(new ActivationNoise(0.2, false, 7, 'bob').apply(t).data).not.toEqual(d);
  expect(new ActivationNoise(0, false, 7, 'alice').apply(t)).toBe(t);
});

test('relative noise scales with the tensor: growing h_A does not outgrow it', () => {
  const sd = (scale: number) => {
    const t = { dtype: 'float32' as const, shape: [1000, 100], data: new Float32Array(100000).fill(scale) };
    const d = new ActivationNoise(0.1, false, 7, 'alice', true).apply(t).data as Float32Array;
    return Math.sqrt(d.reduce((a, x) => a + (x - scale) ** 2, 0) / d.length);
  };
  expect(sd(2)).toBeCloseTo(0.2, 2);
  expect(sd(20)).toBeCloseTo(2, 1);
});

test('privacy.activation_noise: the server receives noisy h_A; the client trains on', async () => {
  const yaml = (sigma: number) =>
    `seed: 3\nmodel: {preset: tiny, max_seq_len: 64}\noptimizer: {lr: 0.003, grad_clip: 0}\ndata: {task: classify, batch_size: 4, seq_len: 48, max_examples: 40}\neval: {max_batches: 2}\nsecurity: {tls: false, payload_encryption: false}\nfederation: {mode: sequential, clients: 1, rounds: 1, local_steps: 8}\nprivacy: {activation_noise: {sigma: ${sigma}}}\n`;
  const first = async (sigma: number) => {
    let hA: Float32Array | null = null;
    const r = await federate(config(yaml(sigma)), {
      audit: (_id, m) => {
        if (!hA && m.kind === 'activations') hA = new Float32Array(Uint8Array.from(m.activations!.tensor!.data).buffer);
      },
    });
    return { hA: hA!, losses: r.results[0].losses };
  };
  const clean = await first(0),
    noisy = await first(0.5);
  // The first step's h_A is the same model on the same batch: the difference is the noise.
  const diff = clean.hA.map((x, i) => noisy.hA[i] - x);
  const sd = Math.sqrt(diff.reduce((a, x) => a + x * x, 0) / diff.length);
  expect(sd).toBeGreaterThan(0.45);
  expect(sd).toBeLessThan(0.55);
  expect(noisy.losses).toHaveLength(8);
  expect(noisy.losses.every(Number.isFinite)).toBe(true);
  expect(noisy.losses[0]).toBeCloseTo(clean.losses[0], 1); // the noise is small against what the tail sees after a block
});
