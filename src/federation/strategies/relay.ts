import { StatelessStrategy, type ClientUpdate, type Params } from './strategy.js';

/**
 * Relay (vanilla split learning, as in FL-GLM's sequential training): clients take turns and each
 * starts from the client parts the previous one finished with, so the client parts take every
 * optimizer step of the federation in sequence, as one centralized model would. Measured on the
 * quickstart silos (docs/benchmarks.md, parity): FedAvg of parallel client parts reaches 0.72-0.86
 * at the quickstart budget because each part takes 1/N of the steps; relaying them reaches the
 * centralized model's accuracy. The round's result is the last client's parts.
 */
export class Relay extends StatelessStrategy {
  readonly name = 'relay';
  override readonly handoff = 'relay' as const;
  aggregate(_round: number, updates: ClientUpdate[]): Params {
    if (updates.length === 0) throw new Error('relay: no client finished the round');
    return updates[updates.length - 1].params;
  }
}
