import { collectUpdates, defineMode, inTurns, jointStep, type RoundClient } from './mode.js';

/**
 * Interleaved: clients take single steps in turn against one trunk replica (every client's step 1,
 * then every client's step 2, ...), each clipped jointly with the trunk. The trunk sees the silos
 * mixed step by step, as a model fed their union would, where sequential mode feeds it one
 * client's `local_steps` at a time (docs/benchmarks.md, data-order: long blocks per silo slow
 * learning); each client keeps its own parts for the strategy to aggregate. A failure drops only
 * that client; the others go on.
 */
export const interleaved = defineMode({
  options: {},
  traits: { handoff: false, subServers: false },
  replicaCount: () => 1,
  trunkStepsPerRound: (f, participants) => f.local_steps * participants,
  async train(ctx, f) {
    for (const s of ctx.participants) ctx.openRound(s);
    let active: RoundClient[] = [...ctx.participants];
    for (let step = 1; step <= f.local_steps; step++)
      active = await inTurns(ctx, active, (s) => jointStep(ctx, s, 0, step));
    return collectUpdates(ctx, active);
  },
});
