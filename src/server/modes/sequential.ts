import type { ClientUpdate, Params } from '../../federation/strategies/strategy.js';
import { collectUpdates, defineMode, serveInTurns, serveSteps, type RoundClient, type RoundContext } from './mode.js';

/**
 * Sequential (FL-GLM): clients take turns against one trunk replica, so the trunk takes every
 * client's steps in sequence. With an averaging strategy all clients start the round from the same
 * global parts; when the strategy hands off, each starts from the previous client's parts, in the
 * turn order the strategy chose.
 */
export const sequential = defineMode({
  options: {},
  traits: { handoff: true, subServers: false },
  replicaCount: () => 1,
  trunkStepsPerRound: (f, participants) => f.local_steps * participants,
  async train(ctx, f) {
    const { handoff, turns } = ctx.plan;
    if (handoff) return handoffTurns(ctx, f.local_steps, handoff.holder, turns ?? ctx.participants.map((s) => s.id));
    for (const s of ctx.participants) ctx.openRound(s);
    return collectUpdates(ctx, await serveInTurns(ctx, ctx.participants, f.local_steps));
  },
});

/**
 * Hand-off turns of `localSteps` each, in the strategy's order; consecutive turns of one client
 * run as one block, with no hand-off between them.
 */
async function handoffTurns(
  ctx: RoundContext,
  localSteps: number,
  holder: string | null,
  turns: string[],
): Promise<ClientUpdate[]> {
  const blocks: { s: RoundClient; turns: number }[] = [];
  for (const id of turns) {
    const last = blocks[blocks.length - 1];
    if (last && last.s.id === id) last.turns++;
    else blocks.push({ s: ctx.participants.find((p) => p.id === id)!, turns: 1 });
  }
  const dropped = new Set<RoundClient>();
  const updates: ClientUpdate[] = [];
  // The round's first client starts from the last round's result: hand-off rounds end without a
  // broadcast to every client (see the server's round end), so it gets them with its turn, unless
  // it is the client that produced them.
  let carried: Params | null = blocks[0]?.s.id === holder ? null : ctx.startParams;
  for (const { s, turns: n } of blocks) {
    if (dropped.has(s)) continue;
    const steps = n * localSteps;
    try {
      ctx.openRound(s, { from: carried ?? undefined, steps });
      await serveSteps(ctx, s, 0, steps);
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
