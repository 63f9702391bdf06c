import type { z } from 'zod';
import { fedavg } from './fedavg.js';
import { fedmedian } from './fedmedian.js';
import { fedprox } from './fedprox.js';
import type { ClientHalf, GradientHook, StrategyPlugin, StrategyTraits } from './plugin.js';
import { relay } from './relay.js';
import { scaffold } from './scaffold.js';
import { fedadagrad, fedadam, fedavgm, fedyogi } from './server-optimizers.js';
import type { Strategy } from './strategy.js';

/**
 * `federation.strategy.name` -> the strategy: the one list of names, read by the config schema for
 * its names, options and traits. Adding one: a file here, a line here, its test.
 */
export const STRATEGIES = {
  fedavg,
  fedavgm,
  fedadam,
  fedyogi,
  fedadagrad,
  fedprox,
  fedmedian,
  relay,
  scaffold,
} satisfies Record<string, { options: z.ZodRawShape; traits: StrategyTraits }>;

export type StrategyName = keyof typeof STRATEGIES;
export const STRATEGY_NAMES = Object.keys(STRATEGIES) as [StrategyName, ...StrategyName[]];
export const DEFAULT_STRATEGY: StrategyName = STRATEGY_NAMES[0];

/** The parsed `federation.strategy` section: a name and every strategy's options. */
export type StrategyChoice = { name: StrategyName } & Record<string, unknown>;

const plugin = (name: StrategyName) => STRATEGIES[name] as StrategyPlugin;

export const strategyTraits = (name: StrategyName): StrategyTraits => STRATEGIES[name].traits;

/** The server half. `clients`: the federation's size N (SCAFFOLD scales its control-variate update by |S| / N). */
export function createStrategy(c: StrategyChoice, clients = 1): Strategy {
  return plugin(c.name).server(c, { clients });
}

/** The client half, if the strategy has one. */
export function createClientHalf(c: StrategyChoice): ClientHalf | null {
  return plugin(c.name).client?.(c) ?? null;
}

/** The hook for trunk replicas when there are several, if the strategy has one. */
export function createTrunkHalf(c: StrategyChoice): GradientHook | null {
  return plugin(c.name).trunk?.(c) ?? null;
}
