import type { ClientUpdate, Params } from '../../federation/strategies/strategy.js';
import type { Participant } from '../participant.js';
import { collectUpdates, serveInTurns, type RoundContext, type ServerModeRunner } from './mode.js';

/**
 * Sequential (FL-GLM): clients take turns against one trunk replica, so the trunk takes every
 * client's steps in sequence. With an averaging strategy all clients start the round from the same
 * global parts; when the strategy hands off, each starts from the previous client's parts, in the
 * turn order the strategy chose.
 */
export const sequential: ServerModeRunner = {
  replicaCount: () => 1,
  trunkStepsPerRound: (cfg, participants) => cfg.federation.local_steps * participants,
  async train(ctx) {
    if (ctx.plan.handoff)
      return handoff(ctx, ctx.plan.handoff.holder, ctx.plan.turns ?? ctx.participants.map((s) => s.id));
    for (const s of ctx.participants) ctx.openRound(s);
    return collectUpdates(ctx, await serveInTurns(ctx, ctx.participants));
  },
};

/**
 * Hand-off turns of `local_steps` each, in the strategy's order; consecutive turns of one client
 * run as one block, with no hand-off between them.
 */
async function handoff(ctx: RoundContext, holder: string | null, turns: string[]): Promise<ClientUpdate[]> {
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
  let carried: Params | null = blocks[0]?.s.id === holder ? null : ctx.startParams;
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
