import { logTicks, niceTicks, renderReport } from '../../src/report/html.js';
import { runView } from '../../src/report/run-view.js';
import { lineChart } from '../../src/report/charts.js';
import { META, simulatedRecords } from '../helpers/run-records.js';

test('axis ticks are nice steps, labelled so that neighbours differ', () => {
  const t = niceTicks(5.551, 5.563);
  expect(t.values.map(t.label)).toEqual(['5.552', '5.554', '5.556', '5.558', '5.560', '5.562']);
  expect(new Set(t.values.map(t.label)).size).toBe(t.values.length);
  const big = niceTicks(0, 61440);
  expect(big.values.map(big.label)).toEqual(['0', '10k', '20k', '30k', '40k', '50k', '60k']);
  const flat = niceTicks(2, 2);
  expect(flat.values.length).toBeGreaterThan(0);
});

test('a log axis has a tick on every decade and between, below 1 too', () => {
  const t = logTicks(0.04, 6);
  expect(t.values.map(t.label)).toEqual(['0.05', '0.1', '0.2', '0.5', '1', '2', '5']);
  expect(t.values.filter((_, i) => t.major[i])).toEqual([0.1, 1]);
  // About one decade: every digit.
  const one = logTicks(0.3, 2.5);
  expect(one.values.map(one.label)).toEqual(['0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9', '1', '2']);
  // Many decades: the decades only.
  expect(logTicks(1e-3, 1e3).values).toEqual([1e-3, 1e-2, 0.1, 1, 10, 100, 1000]);
});

const report = (over: { rounds?: number; clients?: number } = {}) =>
  renderReport({
    meta: { ...META, rounds: over.rounds ?? 4, clients: over.clients ?? 2 },
    records: simulatedRecords({ clients: over.clients ?? 2, rounds: over.rounds ?? 4, steps: 3 }),
    summary: {
      rounds: 4,
      steps: 24,
      tokens: 1536,
      wall_s: 2,
      tokens_per_s: 768,
      eval: { loss: 0.5, perplexity: 1.65, accuracy: 0.875 },
      baseline: { eval: { loss: 0.4, perplexity: 1.49, accuracy: 0.9 }, wall_s: 1, curve: [] },
    },
    baselineLosses: [5, 4, 3, 2, 1, 0.5, 0.4],
    clientPhases: [{ client: 'a', steps: 2, phases: { head_forward: 0.01, wait_trunk_forward: 0.05 } }],
    config: 'seed: 1',
  });

test('report.html: final scores side by side first, full legends, log ticks below 1, a timeline', () => {
  const html = report();
  expect(html.indexOf('Final scores')).toBeLessThan(html.indexOf('Training loss'));
  expect(html).toMatch(
    /federated \(split\)<\/b><br>loss <b>0\.5000<\/b>.*centralized baseline<\/b><br>loss <b>0\.4000/s,
  );
  // The legend is whole, not cut after 20 characters.
  expect(html).toContain('>federated (sequential, fedavg)</text>');
  expect(html).toContain('>global (mean of the last steps)</text>');
  // The loss (0.2 to 5) has labels under 1.
  expect(html).toMatch(/text-anchor="end">0\.5<\/text>/);
  expect(html).toContain('<th>head forward</th><th>wait trunk forward</th>');
  expect(html).toContain('<td>a</td><td>5.0</td><td>25.0</td>');
  expect(html).toContain('<td>1.0 / 2.0</td>');
  expect(html).toContain('name="viewport"');
  expect(html).not.toMatch(/<svg[^>]*width="\d+"/); // every chart takes the page's width
  expect(html).toMatch(/class="span"[^>]*fill="#1f77b4"/); // a head_forward bar on the timeline
  expect(html).toContain('>trunk 0</text>');
});

test('long tables fold; short ones do not', () => {
  expect(report({ rounds: 4 })).not.toContain('<summary>4 rounds</summary>');
  expect(report({ rounds: 20 })).toContain('<summary>20 rounds</summary>');
});

test('the view: round counter, client states and timeline window from the records', () => {
  const records = simulatedRecords({ clients: 3, rounds: 2, steps: 2 });
  const live = runView({ ...META, clients: 3, state: 'live' }, records, { now: 1_700_000_000_000 + 10_000 });
  expect([live.round, live.roundsDone]).toEqual([2, 2]);
  expect(live.clients.map((c) => [c.id, c.state, c.steps])).toEqual([
    ['client-0', 'waiting', 4],
    ['client-1', 'waiting', 4],
    ['client-2', 'waiting', 4],
  ]);
  const more = [
    ...records,
    { type: 'step', round: 3, step: 1, client: 'client-1', loss: 1, tokens: 64, time: 1_700_000_009_900 },
    { type: 'drop', round: 3, client: 'client-2', reason: 'x', time: 1_700_000_009_950 },
  ];
  const v = runView({ ...META, clients: 3, state: 'live' }, more, { now: 1_700_000_010_000 });
  expect(v.round).toBe(3);
  expect(v.clients.map((c) => c.state)).toEqual(['waiting', 'training', 'dropped']);
  expect(v.timeline.rows.map((r) => r.label)).toEqual(['client-0', 'client-1', 'client-2', 'trunk 0']);
  expect(v.timeline.rows[0].spans.length).toBe(12); // the last two steps, six phases each
});

test('an axis of whole numbers (rounds) has whole ticks only', () => {
  const svg = lineChart(
    [
      {
        label: 'r',
        color: '#000',
        points: [
          [1, 3],
          [2, 4],
        ],
      },
    ],
    { xLabel: 'round', yLabel: 's' },
  );
  const xTicks = [...svg.matchAll(/text-anchor="middle">([^<]+)<\/text>/g)].map((m) => m[1]);
  expect(xTicks).toEqual(['1', '2', 'round']);
});

test("the report's summary says the epsilon a run spent, and why it stopped early", () => {
  const html = renderReport({
    meta: { ...META, rounds: 1, clients: 1 },
    records: simulatedRecords({ clients: 1, rounds: 1, steps: 2 }),
    summary: {
      rounds: 1,
      steps: 2,
      tokens: 64,
      wall_s: 1,
      tokens_per_s: 64,
      privacy: { epsilon: 6.6037, delta: 1e-5, user_epsilon: 6.6037 },
      stopped: 'round 2 would spend epsilon 9',
    },
    config: 'seed: 1',
  });
  expect(html).toContain('Differential privacy: ε = 6.604 at δ = 0.00001 (DP-FedAvg, user-level: 6.604).');
  expect(html).toContain('Stopped early: round 2 would spend epsilon 9');
});
