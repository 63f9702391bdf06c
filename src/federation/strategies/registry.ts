import type { StrategyConfig } from '../../config/schema.js';
import { FedAvg } from './fedavg.js';
import { FedMedian } from './fedmedian.js';
import { FedProx } from './fedprox.js';
import { Relay } from './relay.js';
import { Scaffold } from './scaffold.js';
import { ServerOptimizer } from './server-optimizers.js';
import type { Strategy } from './strategy.js';

/** `federation.strategy.name` -> the strategy. Adding one: a file here, a line here, its test. */
export const STRATEGIES: Record<StrategyConfig['name'], (c: StrategyConfig, clients: number) => Strategy> = {
  fedavg: () => new FedAvg(),
  fedprox: (c) => new FedProx(c.mu),
  fedmedian: () => new FedMedian(),
  relay: () => new Relay(),
  scaffold: (c, clients) => new Scaffold(c.server_lr, clients),
  fedavgm: (c) => new ServerOptimizer('fedavgm', { lr: c.server_lr, momentum: c.momentum, betas: c.betas, tau: c.tau }),
  fedadagrad: (c) =>
    new ServerOptimizer('fedadagrad', { lr: c.server_lr, momentum: c.momentum, betas: c.betas, tau: c.tau }),
  fedyogi: (c) => new ServerOptimizer('fedyogi', { lr: c.server_lr, momentum: c.momentum, betas: c.betas, tau: c.tau }),
  fedadam: (c) => new ServerOptimizer('fedadam', { lr: c.server_lr, momentum: c.momentum, betas: c.betas, tau: c.tau }),
};

/** `clients`: the federation's size N (SCAFFOLD scales its control-variate update by |S| / N). */
export function createStrategy(c: StrategyConfig, clients = 1): Strategy {
  return STRATEGIES[c.name](c, clients);
}
