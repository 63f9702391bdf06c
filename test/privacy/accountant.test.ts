import {
  DEFAULT_ORDERS,
  epsilon,
  epsilonFromRdp,
  logErfc,
  noiseForEpsilon,
  rdp,
  rdpOneStep,
  RdpAccountant,
} from '../../src/privacy/accountant.js';
import { runCli } from '../helpers/cli.js';

// RDP of one step by numerical integration with mpmath at 30 digits
// (scripts/reference/rdp_mpmath.py): [q, sigma, order, rdp], integer and fractional orders.
const MPMATH_RDP: [number, number, number, number][] = [
  [0.01, 2.5, 1.5, 1.30014179437e-5],
  [0.01, 2.5, 2.5, 2.17083611383e-5],
  [0.01, 2.5, 5, 4.36151312461e-5],
  [0.001, 1.0, 2, 1.71828035221e-6],
  [0.0001, 1.0, 1.5, 1.28853739407e-8],
  [0.01, 10, 20, 1.0068263112e-5],
  [0.1, 100, 20.5, 1.02522145939e-5],
  [0.05, 0.8, 3.7, 0.0375052271158],
  [0.2, 1.5, 7.3, 0.182266140021],
  [0.004267, 1.1, 12, 0.000155767507032],
];

test.each(MPMATH_RDP)(
  'RDP of the sampled Gaussian (q %p, sigma %p, order %p) equals numerical integration',
  (q, s, a, ref) => {
    expect(Math.abs(rdpOneStep(q, s, a) - ref) / ref).toBeLessThan(1e-8);
  },
);

test('log erfc matches known values over its whole range, without underflow', () => {
  // erfc(0.3), erfc(2), erfc(3) from tables; erfc(10) = 2.088487583762545e-45; large-x asymptote.
  expect(logErfc(0)).toBeCloseTo(0, 15);
  expect(Math.exp(logErfc(0.3))).toBeCloseTo(0.671373240540873, 14);
  expect(Math.exp(logErfc(2)) / 0.004677734981047266).toBeCloseTo(1, 12);
  expect(Math.exp(logErfc(3)) / 2.209049699858544e-5).toBeCloseTo(1, 13);
  expect(Math.exp(logErfc(10)) / 2.088487583762545e-45).toBeCloseTo(1, 12);
  expect(Math.exp(logErfc(-1))).toBeCloseTo(1.842700792949715, 14);
  const x = 40; // erfc(40) ~ 1e-697: the asymptote e^(-x²)/(x√π) (1 - 1/(2x²) + 3/(4x⁴))
  const asymptote = -x * x - Math.log(x * Math.sqrt(Math.PI)) + Math.log(1 - 1 / (2 * x * x) + 3 / (4 * x ** 4));
  expect(logErfc(x)).toBeCloseTo(asymptote, 9);
});

test('published values: Opacus, the moments accountant (Abadi et al. 2016) and dp_accounting', () => {
  // Opacus' compute_dp_sgd_privacy docs: q 0.01, sigma 1.0, 300 steps, delta 1e-5, orders 2 5 10 20 100:
  // epsilon 2.39 at order 5.
  const opacus = epsilon({ samplingRate: 0.01, noiseMultiplier: 1.0, steps: 300 }, 1e-5, [2, 5, 10, 20, 100]);
  expect(opacus.order).toBe(5);
  expect(Math.abs(opacus.epsilon - 2.39) / 2.39).toBeLessThan(0.01);
  // MNIST DP-SGD, q = 256/60000, delta 1e-5, with the classic conversion the moments accountant
  // used: sigma 1.3 for 20 epochs -> (1.34, 1e-5), sigma 0.7 for 70 epochs -> (8.68, 1e-5)
  // (Dong, Roth, Su, "Gaussian Differential Privacy", HDSR 2020, Fig. 4, moments accountant).
  for (const [sigma, epochs, ref] of [
    [1.3, 20, 1.34],
    [0.7, 70, 8.68],
  ]) {
    const m = { samplingRate: 256 / 60000, noiseMultiplier: sigma, steps: Math.round((epochs * 60000) / 256) };
    const classic = epsilonFromRdp(rdp(m), DEFAULT_ORDERS, 1e-5, 'classic').epsilon;
    expect(Math.abs(classic - ref) / ref).toBeLessThan(0.01);
    // Balle et al.'s conversion is never looser than the classic one.
    expect(epsilon(m, 1e-5).epsilon).toBeLessThan(classic);
  }
  // dp_accounting's tests: constant RDP 1.1 over orders 2..32 is epsilon 1.32783806176 at delta
  // 1e-5 (order 32); the Gaussian with sigma 4.530877117 is exactly (1, 1e-6)-DP.
  const orders = Array.from({ length: 31 }, (_, i) => i + 2);
  const pure = epsilonFromRdp(
    orders.map(() => 1.1),
    orders,
    1e-5,
  );
  expect(pure.epsilon).toBeCloseTo(1.32783806176, 9);
  expect(pure.order).toBe(32);
  const fine = Array.from({ length: 99000 }, (_, i) => 1.001 + 0.001 * i);
  expect(epsilon({ samplingRate: 1, noiseMultiplier: 4.530877117, steps: 1 }, 1e-6, fine).epsilon).toBeCloseTo(1, 6);
});

test('composition adds RDP; the accountant keeps state across a restore', () => {
  const m = { samplingRate: 0.02, noiseMultiplier: 1.2, steps: 40 };
  const acc = new RdpAccountant().compose({ ...m, steps: 15 }).compose({ ...m, steps: 25 });
  expect(acc.epsilon(1e-5).epsilon).toBeCloseTo(epsilon(m, 1e-5).epsilon, 10);
  const again = new RdpAccountant();
  again.restore(acc.state());
  expect(again.epsilon(1e-5)).toEqual(acc.epsilon(1e-5));
  expect(rdpOneStep(0, 1, 2)).toBe(0);
  expect(rdpOneStep(0.1, 0, 2)).toBe(Infinity);
  expect(new RdpAccountant().epsilon(1e-5).epsilon).toBe(0);
});

test('noiseForEpsilon finds the smallest sigma within the budget', () => {
  const sigma = noiseForEpsilon(8, 1e-5, 1, 20);
  expect(epsilon({ samplingRate: 1, noiseMultiplier: sigma, steps: 20 }, 1e-5).epsilon).toBeLessThanOrEqual(8);
  expect(epsilon({ samplingRate: 1, noiseMultiplier: sigma * 0.99, steps: 20 }, 1e-5).epsilon).toBeGreaterThan(8);
});

test('flglm privacy epsilon prints the accountant; bad input names the flag', () => {
  const r = runCli([
    'privacy',
    'epsilon',
    '--sampling-rate',
    '0.01',
    '--noise-multiplier',
    '1',
    '--steps',
    '300',
    '--delta',
    '1e-5',
    '--json',
  ]);
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out.epsilon).toBeCloseTo(epsilon({ samplingRate: 0.01, noiseMultiplier: 1, steps: 300 }, 1e-5).epsilon, 10);
  const bad = runCli([
    'privacy',
    'epsilon',
    '--sampling-rate',
    '0.01',
    '--noise-multiplier',
    '1',
    '--steps',
    '300',
    '--delta',
    '0',
  ]);
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toMatch(/--delta: expected a number in \(0, 1\)/);
  const noise = runCli([
    'privacy',
    'noise',
    '--target-epsilon',
    '8',
    '--sampling-rate',
    '1',
    '--steps',
    '20',
    '--delta',
    '1e-5',
  ]);
  expect(noise.code).toBe(0);
  expect(noise.stdout).toMatch(/noise multiplier [\d.]+ gives ε = [0-7]\.\d+/);
});
