import { collectUpdates, defineMode, serveInTurns } from '../../src/server/modes/mode.js';
import { config, federate } from '../helpers/federation.js';

// A mode written against the RoundContext alone (here: sequential turns in reverse join order),
// injected with ServerOptions.runner, nothing else of the server touched. (A mode in the registry is
// one file and one line: test/federation/interleaved.test.ts.)
const joinOrder: string[][] = [];
const reverseSequential = defineMode({
  options: {},
  traits: { handoff: false, subServers: false },
  replicaCount: () => 1,
  trunkStepsPerRound: (f, participants) => f.local_steps * participants,
  async train(ctx, f) {
    joinOrder.push(ctx.participants.map((p) => p.id));
    const order = [...ctx.participants].reverse();
    for (const s of order) ctx.openRound(s);
    return collectUpdates(ctx, await serveInTurns(ctx, order, f.local_steps));
  },
});

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
