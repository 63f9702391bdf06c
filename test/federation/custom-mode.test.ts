import { collectUpdates, serveInTurns, type ServerModeRunner } from '../../src/server/modes/mode.js';
import { config, federate } from '../helpers/federation.js';

// Adding a server mode, done once as docs/architecture.md says: a ServerModeRunner over the
// RoundContext (here: sequential turns in reverse join order), nothing else of the server touched.
const joinOrder: string[][] = [];
const reverseSequential: ServerModeRunner = {
  replicaCount: () => 1,
  trunkStepsPerRound: (cfg, participants) => cfg.federation.local_steps * participants,
  async train(ctx) {
    joinOrder.push(ctx.participants.map((p) => p.id));
    const order = [...ctx.participants].reverse();
    for (const s of order) ctx.openRound(s);
    return collectUpdates(ctx, await serveInTurns(ctx, order));
  },
};

test('a mode written against RoundContext alone trains a federation', async () => {
  const cfg = config(`
seed: 3
model: {preset: tiny}
data: {batch_size: 2, seq_len: 24, max_examples: 24}
federation: {mode: sequential, clients: 2, rounds: 2, local_steps: 2}
eval: {max_batches: 1}
security: {tls: false, payload_encryption: false}
`);
  const steps: string[] = [];
  const { results, summary } = await federate(cfg, {
    runner: reverseSequential,
    onMetric: (r) => {
      if (r.type === 'step') steps.push(r.client as string);
    },
  });
  expect(summary.history.map((r) => r.clients.length)).toEqual([2, 2]);
  expect(results.every((r) => r.losses.length === 4 && r.eval !== null)).toBe(true);
  // Each round serves the clients in reverse order of their sessions, two steps each.
  expect(steps).toEqual(joinOrder.flatMap((ids) => [...ids].reverse().flatMap((id) => [id, id])));
});
