import { DEFAULT_ORDERS, epsilon, epsilonFromRdp, rdp } from '../../src/privacy/accountant.js';
import { ActivationDp } from '../../src/privacy/example-dp.js';
import { PrivacyLedger } from '../../src/privacy/dp-budget.js';
import { resolveData } from '../../src/config/experiment.js';
import { collectUpdates, defineMode, serveInTurns } from '../../src/server/modes/mode.js';
import { SplitServer } from '../../src/server/split-server.js';
import type { ClientMessage } from '../../src/protocol/messages.js';
import { UserError } from '../../src/util/errors.js';
import { config, federate, TINY_RUN } from '../helpers/federation.js';

// The accountant wired into a run: ε per round in the round records and the summary, a run whose
// planned rounds would pass privacy.target_epsilon refused before it starts, and one that spends
// more than it planned stopped before the round that would pass it. And dp.activations: what the
// server receives is each example's h_A clipped to C plus N(0, (σC)²).

const run = (privacy: string, federation = 'mode: sequential, clients: 2, rounds: 2, local_steps: 2') =>
  config(
    `${TINY_RUN}\nsecurity: {tls: false, payload_encryption: false}\nfederation: {${federation}}\nprivacy: {${privacy}}\n`,
  );

test("DP-FedAvg: epsilon per round is the accountant's for q = 1, and a run over its budget is refused before any client joins", async () => {
  const records: Record<string, unknown>[] = [];
  const cfg = run('dp: {updates: {enabled: true, clip_norm: 1, noise_multiplier: 1.5}}, delta: 1.0e-5');
  const { summary } = await federate(cfg, { onMetric: (r) => r.type === 'round' && records.push(r) });
  const expected = [1, 2].map((steps) => epsilon({ samplingRate: 1, noiseMultiplier: 1.5, steps }, 1e-5).epsilon);
  const got = records.map((r) => (r.privacy as { user_epsilon: number }).user_epsilon);
  expect(got).toHaveLength(2);
  got.forEach((e, i) => expect(e).toBeCloseTo(expected[i], 9));
  expect(summary.privacy?.epsilon).toBeCloseTo(expected[1], 9);
  // A budget between round 2 and round 3's epsilon: 3 rounds are refused, with the fix.
  const target = (expected[1] + epsilon({ samplingRate: 1, noiseMultiplier: 1.5, steps: 3 }, 1e-5).epsilon) / 2;
  const over = run(
    `dp: {updates: {enabled: true, clip_norm: 1, noise_multiplier: 1.5}}, target_epsilon: ${target}`,
    'mode: sequential, clients: 2, rounds: 3, local_steps: 2',
  );
  expect(() => new SplitServer({ cfg: over, kit: null })).toThrow(UserError);
  expect(() => new SplitServer({ cfg: over, kit: null })).toThrow(
    /over privacy.target_epsilon .* raise the noise multiplier/,
  );
}, 120_000);

// A mode that serves twice the planned local steps: the run spends faster than it planned.
const greedy = defineMode({
  options: {},
  traits: { handoff: false, subServers: false },
  replicaCount: () => 1,
  trunkStepsPerRound: (f, participants) => 2 * f.local_steps * participants,
  async train(ctx, f) {
    for (const s of ctx.participants) ctx.openRound(s, { steps: 2 * f.local_steps });
    return collectUpdates(ctx, await serveInTurns(ctx, ctx.participants, 2 * f.local_steps));
  },
});

test('dp.activations: example-level epsilon per client from its steps; a run spending past its budget stops before the round that would pass it', async () => {
  const privacy = (target: number | null) =>
    `dp: {activations: {enabled: true, clip_norm: 2, noise_multiplier: 1.2}}, target_epsilon: ${target ?? 'null'}`;
  const fed = 'mode: sequential, clients: 2, rounds: 3, local_steps: 2, client_timeout_ms: 15000';
  const data = resolveData(run(privacy(null), fed));
  const B = 4;
  // One step's RDP per silo (computing it is the slow part), scaled by the steps.
  const one = data.silos.map((s) => rdp({ samplingRate: B / s.length, noiseMultiplier: 1.2, steps: 1 }));
  const eps = (steps: number) =>
    Math.max(
      ...one.map(
        (r) =>
          epsilonFromRdp(
            r.map((x) => steps * x),
            DEFAULT_ORDERS,
            1e-5,
          ).epsilon,
      ),
    );
  // Planned: 3 rounds x 2 steps = 6 steps. The mode takes 4 a round: after round 1, 4; a second would make 8.
  const cfg = run(privacy(eps(6) * 1.0001), fed);
  const received: Float32Array[] = [];
  const audit = (_id: string, m: ClientMessage) => {
    if (m.kind === 'activations' && !m.activations!.eval)
      received.push(new Float32Array(Uint8Array.from(m.activations!.tensor!.data).buffer));
  };
  const records: { privacy: { example_epsilon: number; client_steps: Record<string, { steps: number }> } }[] = [];
  const { summary, results } = await federate(cfg, {
    runner: greedy,
    data,
    audit,
    onMetric: (r) => {
      if (r.type === 'round') records.push(r as never);
    },
  });
  expect(summary.history).toHaveLength(1);
  expect(summary.stopped).toMatch(/^round 2 would spend epsilon .* over privacy.target_epsilon/);
  expect(results.every((r) => r.eval !== null)).toBe(true); // evaluated after the last round it ran
  expect(Object.values(records[0].privacy.client_steps).map((c) => c.steps)).toEqual([4, 4]);
  expect(records[0].privacy.example_epsilon).toBeCloseTo(eps(4), 9);
  expect(summary.privacy?.epsilon).toBeCloseTo(eps(4), 9);
  expect(summary.privacy!.epsilon!).toBeLessThanOrEqual(eps(6) * 1.0001);
  // What the server saw: every example's h_A is clipped to 2, then noised with std 1.2 x 2.
  const per = received[0].length / B;
  const noise = received.flatMap((x) => [...x]);
  const sd = Math.sqrt(noise.reduce((a, v) => a + v * v, 0) / noise.length);
  // |clipped part| per coordinate is at most 2 / sqrt(per) << 2.4: the spread is the noise's.
  expect(sd).toBeGreaterThan(2.4 * 0.97);
  expect(sd).toBeLessThan(Math.sqrt(2.4 ** 2 + 4 / per) * 1.03);
  // A plan that cannot fit is refused once the clients have joined, and they are told why.
  await expect(federate(run(privacy(eps(5)), fed), { data })).rejects.toThrow(/this run would spend epsilon/);
}, 180_000);

test('ActivationDp clips each example to C and adds sigma C noise; the input stays clean', () => {
  const B = 3,
    per = 5000;
  const src = new Float32Array(B * per);
  src.fill(1, 0, per); // norm sqrt(5000) ~ 70.7: clipped to 2
  src.fill(0.01, per, 2 * per); // norm 0.707: kept
  const t = { dtype: 'float32' as const, shape: [B, 10, per / 10], data: src };
  const clean = new ActivationDp(2, 0).apply(t).data as Float32Array;
  const norm = (x: Float32Array, b: number) => Math.hypot(...x.subarray(b * per, (b + 1) * per));
  expect(norm(clean, 0)).toBeCloseTo(2, 4);
  expect(norm(clean, 1)).toBeCloseTo(Math.hypot(...src.subarray(per, 2 * per)), 4);
  expect(norm(clean, 2)).toBe(0);
  expect(src[0]).toBe(1);
  const noisy = new ActivationDp(2, 0.5).apply(t).data as Float32Array;
  const row2 = [...noisy.subarray(2 * per)];
  expect(Math.sqrt(row2.reduce((a, v) => a + v * v, 0) / per)).toBeCloseTo(1, 1);
});

test('with gradient_clip_norm, dL/dh_B is clipped per example too, and a step is accounted as one Gaussian of sigma / sqrt(2)', () => {
  const dp = new ActivationDp(2, 0, 0.5);
  expect(dp.gradients).toBe(true);
  const g = { dtype: 'float32' as const, shape: [2, 1, 4], data: Float32Array.from([3, 4, 0, 0, 0.03, 0.04, 0, 0]) };
  expect([...(dp.apply(g, true).data as Float32Array)].map((x) => +x.toFixed(5))).toEqual([
    0.3, 0.4, 0, 0, 0.03, 0.04, 0, 0,
  ]);
  expect(Math.hypot(...(dp.apply(g).data as Float32Array).subarray(0, 4))).toBeCloseTo(2, 5); // h_A's norm
  expect(new ActivationDp(2, 0).gradients).toBe(false);
  const ledger = (extra: string) =>
    new PrivacyLedger(run(`dp: {activations: {enabled: true, clip_norm: 1, noise_multiplier: 2${extra}}}`));
  // A silo no larger than a batch: q = 1, the closed form.
  const spend = { a: { steps: 3, examples: 4 } };
  expect(ledger('').spend(spend).example_epsilon).toBeCloseTo(
    epsilon({ samplingRate: 1, noiseMultiplier: 2, steps: 3 }, 1e-5).epsilon,
    9,
  );
  expect(ledger(', gradient_clip_norm: 0.1').spend(spend).example_epsilon).toBeCloseTo(
    epsilon({ samplingRate: 1, noiseMultiplier: 2 / Math.SQRT2, steps: 3 }, 1e-5).epsilon,
    9,
  );
});

test('in a real run the server receives each example of dL/dh_B within gradient_clip_norm', async () => {
  const norms: number[] = [];
  const cfg = run(
    'dp: {activations: {enabled: true, clip_norm: 100, noise_multiplier: 0, gradient_clip_norm: 0.001}}',
    'mode: sequential, clients: 1, rounds: 1, local_steps: 2',
  );
  await federate(cfg, {
    audit: (_id, m) => {
      if (m.kind !== 'tailGrad') return;
      const g = new Float32Array(Uint8Array.from(m.tailGrad!.tensor!.data).buffer);
      const per = g.length / 4;
      for (let b = 0; b < 4; b++) norms.push(Math.hypot(...g.subarray(b * per, (b + 1) * per)));
    },
  });
  expect(norms).toHaveLength(8);
  for (const n of norms) expect(n).toBeLessThanOrEqual(0.001 * (1 + 1e-4));
  expect(Math.max(...norms)).toBeGreaterThan(0.001 * 0.999); // clipping was active
}, 120_000);
