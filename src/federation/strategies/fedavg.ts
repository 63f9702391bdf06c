import { defineStrategy } from './plugin.js';
import { averageUpdates, StatelessStrategy, type ClientUpdate, type Params } from './strategy.js';

/** FedAvg (McMahan et al. 2017): the sample-weighted mean of the clients' parameters. */
class FedAvg extends StatelessStrategy {
  aggregate(_round: number, updates: ClientUpdate[]): Params {
    return averageUpdates(updates);
  }
}

export const fedavg = defineStrategy({
  options: {},
  traits: { weightedMean: true, hideable: true, handoff: false },
  server: () => new FedAvg(),
});
