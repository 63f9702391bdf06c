import type { ClientUpdate, Params } from '../../federation/strategies/strategy.js';
import type { Relay } from '../../federation/strategies/relay.js';
import type { Participant } from '../participant.js';
import { collectUpdates, serveInTurns, type RoundContext, type ServerModeRunner } from './mode.js';

/**
 * Sequential (FL-GLM): clients take turns against one trunk replica, so the trunk takes every
 * client's steps in sequence. With an averaging strategy all clients start the round from the same
 * global parts; with `relay` each starts from the previous client's parts (the order rotates every
 * round so no client is always last).
 */
export const sequential: ServerModeRunner = {
  replicaCount: () => 1,
  trunkStepsPerRound: (cfg, participants) => cfg.federation.local_steps * participants,
  async train(ctx) {
    if (ctx.strategy.handoff === 'relay') return relay(ctx);
    for (const s of ctx.participants) ctx.openRound(s);
    return collectUpdates(ctx, await serveInTurns(ctx, ctx.participants));
  },
};

/**
 * Relay: the round has one turn of `local_steps` per participant; the strategy says who takes each
 * (in proportion to their data), and consecutive turns of one client run as one block, with no
 * hand-off between them.
 */
async function relay(ctx: RoundContext): Promise<ClientUpdate[]> {
  const strategy = ctx.strategy as Relay;
  const turns = strategy.turnOrder(
    ctx.participants.map((s) => ({ id: s.id, weight: s.numExamples })),
    ctx.participants.length,
  );
  const blocks: { s: Participant; turns: number }[] = [];
  for (const id of turns) {
    const last = blocks[blocks.length - 1];
    if (last && last.s.id === id) last.turns++;
    else blocks.push({ s: ctx.participants.find((p) => p.id === id)!, turns: 1 });
  }
  const dropped = new Set<Participant>();
  const updates: ClientUpdate[] = [];
  // The round's first client starts from the last round's result: relay rounds end without a
  // broadcast to every client (see SplitServer.trainRound), so it gets them with its turn, unless
  // it is the client that produced them.
  let carried: Params | null = blocks[0]?.s.id === strategy.holder ? null : ctx.startParams;
  for (const { s, turns: n } of blocks) {
    if (dropped.has(s)) continue;
    const steps = n * ctx.cfg.federation.local_steps;
    try {
      ctx.openRound(s, carried ?? undefined, steps);
      await ctx.serveSteps(s, 0, steps);
      const u = await ctx.receiveParameters(s);
      updates.push(u);
      carried = u.params;
    } catch (e) {
      dropped.add(s);
      ctx.drop(s, e as Error);
    }
  }
  return updates;
}
