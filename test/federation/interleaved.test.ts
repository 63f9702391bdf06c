import { trainCentralized } from '../../src/training/centralized.js';
import { config, federate, TINY_RUN } from '../helpers/federation.js';

// A mode added as one file plus one registry line (src/server/modes/interleaved.ts), chosen by the
// config like any other: no ServerOptions.runner.

// Clipping active (far below the gradient norm): every step tests joint clipping.
const base =
  TINY_RUN.replace('grad_clip: 0', 'grad_clip: 0.05').replace('max_batches: 3', 'max_batches: 1') +
  'security: {tls: false, payload_encryption: false}\n';

test('interleaved mode: single steps in turn across clients, each clipped jointly with the trunk', async () => {
  const cfg = config(base + 'federation: {mode: interleaved, clients: 2, rounds: 2, local_steps: 2}\n');
  expect(cfg.federation.mode).toBe('interleaved');
  const steps: string[] = [];
  let stepDone = 0;
  const { results, summary } = await federate(cfg, {
    onMetric: (r) => {
      if (r.type === 'step') steps.push(`${r.client as string}:${r.step as number}`);
    },
    audit: (_id, m) => {
      if (m.kind === 'stepDone') stepDone++;
    },
  });
  expect(summary.mode).toBe('interleaved');
  const round = ['insecure-alice:1', 'insecure-bob:1', 'insecure-alice:2', 'insecure-bob:2'];
  expect(steps).toEqual([...round, ...round]);
  // Joint clipping: every step's client answered with its norm.
  expect(stepDone).toBe(8);
  expect(results.every((r) => r.losses.length === 4 && r.eval !== null)).toBe(true);
});

test('interleaved mode, 1 client, clipping active: the same per-step losses as centralized training', async () => {
  const cfg = config(base + 'federation: {mode: interleaved, clients: 1, rounds: 2, local_steps: 4}\n');
  const { results, data } = await federate(cfg);
  const central = await trainCentralized(cfg, { quiet: true, data });
  expect(results[0].losses).toHaveLength(8);
  results[0].losses.forEach((l, i) => expect(Math.abs(l - central.losses[i]) / central.losses[i]).toBeLessThan(1e-4));
});
