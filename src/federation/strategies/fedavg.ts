import { averageUpdates, StatelessStrategy, type ClientUpdate, type Params } from './strategy.js';

/** FedAvg (McMahan et al. 2017): the sample-weighted mean of the clients' parameters. */
export class FedAvg extends StatelessStrategy {
  readonly name = 'fedavg';
  aggregate(_round: number, updates: ClientUpdate[]): Params {
    return averageUpdates(updates);
  }
}
