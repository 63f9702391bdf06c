import type { z } from 'zod';
import type { ClientHalf, GradientHook, StrategyPlugin, StrategyTraits } from './plugin.js';
import * as REGISTRY from './registry.js';
import type { Strategy } from './strategy.js';

/** Every strategy by name (registry.ts), in name order. */
export const STRATEGIES = REGISTRY satisfies Record<string, { options: z.ZodRawShape; traits: StrategyTraits }>;

export type StrategyName = keyof typeof STRATEGIES;
export const STRATEGY_NAMES = Object.keys(STRATEGIES).sort() as [StrategyName, ...StrategyName[]];
/** federation.strategy.name's default. */
export const DEFAULT_STRATEGY: StrategyName = 'fedavg';

/** The parsed `federation.strategy` section: a name and every strategy's options. */
export type StrategyChoice = { name: StrategyName } & Record<string, unknown>;

const plugin = (name: StrategyName) => STRATEGIES[name] as unknown as StrategyPlugin;

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

/** What the strategy says about its options in this federation (config errors under federation.strategy). */
export function strategyProblems(
  c: StrategyChoice,
  federation: { clients: number },
): { key: string; message: string }[] {
  return plugin(c.name).check?.(c, federation) ?? [];
}
