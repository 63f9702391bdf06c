// What the differential-privacy keys (dp-schema.ts) can be combined with, checked with the config:
// each problem names the key and the fix. Which strategies qualify is their traits.

import { STRATEGY_NAMES, strategyTraits, type StrategyName } from '../federation/strategies/lookup.js';
import type { DpConfig } from './dp-schema.js';

const meanStrategies = STRATEGY_NAMES.filter((n) => strategyTraits(n).weightedMean === true);

interface Plan {
  federation: { strategy: { name: StrategyName; client_optimizer: string } };
  privacy: {
    activation_noise: { sigma: number };
    secure_aggregation: { enabled: boolean };
    hide_aggregate: boolean;
    dp: DpConfig;
    target_epsilon: number | null;
  };
}

type Problem = { path: string[]; message: string };

export function dpProblems(cfg: Plan): Problem[] {
  const out: Problem[] = [];
  const { dp, secure_aggregation: secure, hide_aggregate: hide } = cfg.privacy;
  const at = (path: string[], message: string) => out.push({ path: ['privacy', ...path], message });
  const strategy = cfg.federation.strategy.name;
  if (dp.updates.enabled) {
    const traits = strategyTraits(strategy);
    if (traits.weightedMean !== true)
      at(
        ['dp', 'updates', 'enabled'],
        `DP-FedAvg bounds each client's share of a mean of updates, which ${strategy} is not (it needs ${traits.weightedMean.needs}); use one of ${meanStrategies.join(', ')}`,
      );
    if (cfg.federation.strategy.client_optimizer === 'average')
      out.push({
        path: ['federation', 'strategy', 'client_optimizer'],
        message:
          "client_optimizer: average uploads each client's optimizer moments, which DP-FedAvg does not clip or noise; use keep or reset",
      });
    if (dp.updates.noise === 'client' && !secure.enabled)
      at(
        ['dp', 'updates', 'noise'],
        "noise: client adds each client's share of the noise, so without secure aggregation the server sees every update with a fraction of it; set privacy.secure_aggregation.enabled: true, or noise: server",
      );
    if (dp.updates.noise === 'server' && hide)
      at(
        ['dp', 'updates', 'noise'],
        'noise: server adds the noise to the sum, which hide_aggregate keeps from the server; use noise: client (each client adds its share before secure aggregation)',
      );
  }
  if (dp.activations.enabled && cfg.privacy.activation_noise.sigma > 0)
    at(
      ['activation_noise', 'sigma'],
      'activation_noise adds unaccounted noise to h_A, which privacy.dp.activations already clips and noises with an accounted ε; set activation_noise.sigma: 0 (or turn dp.activations off)',
    );
  if (cfg.privacy.target_epsilon !== null && !dp.updates.enabled && !dp.activations.enabled)
    at(
      ['target_epsilon'],
      'a budget needs a mechanism to account; set privacy.dp.updates.enabled or privacy.dp.activations.enabled: true',
    );
  return out;
}
