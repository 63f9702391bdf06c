import type { ClientUpdate, Params } from '../../federation/strategies/strategy.js';
import type { ClientSession } from '../client-session.js';
import { collectUpdates, type RoundContext, type ServerModeRunner } from './mode.js';

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
    const survivors: ClientSession[] = [];
    for (const s of ctx.participants) {
      try {
        await ctx.serveSteps(s, 0);
        survivors.push(s);
      } catch (e) {
        ctx.drop(s, e as Error);
      }
    }
    return collectUpdates(ctx, survivors);
  },
};

async function relay(ctx: RoundContext): Promise<ClientUpdate[]> {
  const n = ctx.participants.length;
  const order = ctx.participants.map((_, i) => ctx.participants[(i + ctx.round - 1) % n]);
  const updates: ClientUpdate[] = [];
  // The round's first client starts from the last round's result: relay rounds end without a
  // broadcast to every client (see SplitServer.trainRound), so it may not hold it yet.
  let carried: Params | null = ctx.startParams;
  for (const s of order) {
    try {
      ctx.openRound(s, carried ?? undefined);
      await ctx.serveSteps(s, 0);
      const u = await ctx.receiveParameters(s);
      updates.push(u);
      carried = u.params;
    } catch (e) {
      ctx.drop(s, e as Error);
    }
  }
  return updates;
}
