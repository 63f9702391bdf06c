import { z } from 'zod';
import { collectUpdates, defineMode, serveSteps, type RoundClient } from './mode.js';

/**
 * Hierarchical (FedSEA-LLaMA server hierarchy): `sub_servers` trunk replicas, each in its own
 * worker thread (or a remote sub-server), serve their clients in parallel; the server averages the
 * replicas at round end.
 */
export const hierarchical = defineMode({
  options: { sub_servers: z.number().int().positive().default(2) },
  traits: { handoff: false, subServers: true },
  replicaCount: (f) => f.sub_servers,
  trunkStepsPerRound: (f, participants, replicas) => f.local_steps * Math.max(1, Math.ceil(participants / replicas)),
  async train(ctx, f) {
    for (const s of ctx.participants) ctx.openRound(s);
    const served = await Promise.all(
      ctx.participants.map((s, i) =>
        serveSteps(ctx, s, i % ctx.replicaCount, f.local_steps).then(
          () => s,
          (e: Error) => {
            ctx.drop(s, e);
            return null;
          },
        ),
      ),
    );
    return collectUpdates(
      ctx,
      served.filter((s): s is RoundClient => s !== null),
    );
  },
});
