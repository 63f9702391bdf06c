import type { Participant } from '../participant.js';
import { collectUpdates, type ServerModeRunner } from './mode.js';

/**
 * Hierarchical (FedSEA-LLaMA server hierarchy): `sub_servers` trunk replicas, each in its own
 * worker thread (or a remote sub-server), serve their clients in parallel; the server averages the
 * replicas at round end.
 */
export const hierarchical: ServerModeRunner = {
  replicaCount: (cfg) => cfg.federation.sub_servers,
  trunkStepsPerRound: (cfg, participants, replicas) =>
    cfg.federation.local_steps * Math.max(1, Math.ceil(participants / replicas)),
  async train(ctx) {
    for (const s of ctx.participants) ctx.openRound(s);
    const served = await Promise.all(
      ctx.participants.map((s, i) =>
        ctx.serveSteps(s, i % ctx.replicas.length).then(
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
      served.filter((s): s is Participant => s !== null),
    );
  },
};
