import { niceTicks, renderReport } from '../../src/report/html.js';

test('axis ticks are nice steps, labelled so that neighbours differ', () => {
  const t = niceTicks(5.551, 5.563);
  expect(t.values.map(t.label)).toEqual(['5.552', '5.554', '5.556', '5.558', '5.560', '5.562']);
  expect(new Set(t.values.map(t.label)).size).toBe(t.values.length);
  const big = niceTicks(0, 61440);
  expect(big.values.map(big.label)).toEqual(['0', '10k', '20k', '30k', '40k', '50k', '60k']);
  const flat = niceTicks(2, 2);
  expect(flat.values.length).toBeGreaterThan(0);
});

test('the report shows per-client step time and per-client traffic, and stays readable when narrow', () => {
  const html = renderReport({
    name: 'x',
    mode: 'sequential',
    summary: { rounds: 1, steps: 2, tokens: 64, wall_s: 1, tokens_per_s: 64 },
    steps: [
      { client: 'a', loss: 5.56, index: 0 },
      { client: 'a', loss: 5.555, index: 1 },
    ],
    rounds: [
      {
        round: 1,
        wall_s: 1,
        train_loss: 5.5,
        clients: ['a'],
        dropped: [],
        bytes_up: 2 ** 20,
        bytes_down: 2 ** 21,
        bytes_by_client: { a: [2 ** 20, 2 ** 21] },
      },
    ],
    clientPhases: [{ client: 'a', steps: 2, phases: { head_forward: 0.01, wait_trunk_forward: 0.05 } }],
    config: 'seed: 1',
  });
  expect(html).toContain('<th>head forward</th><th>wait trunk forward</th>');
  expect(html).toContain('<td>a</td><td>5.0</td><td>25.0</td>');
  expect(html).toContain('<td>1.0 / 2.0</td>');
  expect(html).toContain('name="viewport"');
  expect(html).not.toMatch(/<svg[^>]*width="720"/);
});

test("the report's summary says the epsilon a run spent, and why it stopped early", () => {
  const html = renderReport({
    name: 'x',
    mode: 'sequential',
    summary: {
      rounds: 1,
      steps: 2,
      tokens: 64,
      wall_s: 1,
      tokens_per_s: 64,
      privacy: { epsilon: 6.6037, delta: 1e-5, user_epsilon: 6.6037 },
      stopped: 'round 2 would spend epsilon 9',
    },
    steps: [{ client: 'a', loss: 5.5, index: 0 }],
    rounds: [{ round: 1, wall_s: 1, train_loss: 5.5, clients: ['a'], dropped: [], bytes_up: 1, bytes_down: 1 }],
    config: 'seed: 1',
  });
  expect(html).toContain('Differential privacy: ε = 6.604 at δ = 0.00001 (DP-FedAvg, user-level: 6.604).');
  expect(html).toContain('Stopped early: round 2 would spend epsilon 9');
});
