import { defineStrategy } from './plugin.js';
import { StatelessStrategy, type ClientUpdate, type Params, type RoundClient, type RoundPlan } from './strategy.js';

/**
 * Relay (vanilla split learning, as in FL-GLM's sequential training): clients take turns and each
 * starts from the client parts and optimizer state the previous one finished with, so the client
 * parts take every optimizer step of the federation in sequence, as one centralized model would
 * (test/federation/relay.test.ts checks the losses equal centralized training on the same batches).
 *
 * Turns go to clients in proportion to their data (smooth weighted round-robin over the examples
 * each reported at join), so the model sees the silos mixed as the union would be sampled.
 * Measured (docs/benchmarks.md, data-order): on the quickstart silos a centralized model fed
 * blocks of 4 or 13 consecutive steps per silo stays at the "always ham" prior for most of the
 * budget, while turns of 1 step reach the shuffled union's accuracy; use local_steps: 1.
 */
export class Relay extends StatelessStrategy {
  /** Smooth weighted round-robin credit per client, carried across rounds. */
  private readonly credit = new Map<string, number>();
  /** The client whose turn produced the current global parts (it needs no hand-off to continue). */
  private holder: string | null = null;

  /** One turn per client this round, handed out in proportion to the clients' data. */
  override configureRound(_round: number, clients: readonly RoundClient[]): RoundPlan {
    return { turns: this.turnOrder(clients, clients.length), handoff: { holder: this.holder }, config: () => ({}) };
  }

  /** Who takes each of `turns`, in order (the same client may get consecutive turns). */
  turnOrder(clients: readonly RoundClient[], turns: number): string[] {
    const total = clients.reduce((a, c) => a + Math.max(0, c.weight), 0);
    const order: string[] = [];
    for (let t = 0; t < turns; t++) {
      let best: string | null = null;
      for (const c of clients) {
        const v = (this.credit.get(c.id) ?? 0) + (total > 0 ? Math.max(0, c.weight) : 1);
        this.credit.set(c.id, v);
        if (best === null || v > this.credit.get(best)!) best = c.id;
      }
      this.credit.set(best!, this.credit.get(best!)! - (total > 0 ? total : clients.length));
      order.push(best!);
    }
    return order;
  }

  aggregate(_round: number, updates: ClientUpdate[]): Params {
    if (updates.length === 0) throw new Error('relay: no client finished the round');
    this.holder = updates[updates.length - 1].clientId;
    return updates[updates.length - 1].params;
  }
}

export const relay = defineStrategy({
  options: {},
  traits: { weightedMean: { needs: "each client's own parts" }, hideable: false, handoff: true },
  server: () => new Relay(),
});
