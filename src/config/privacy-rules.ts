// What secure aggregation and a hidden aggregate can be combined with, checked with the config:
// each problem names the key and the fix. Kept apart from schema.ts, which stays a table of keys;
// which strategies qualify is each strategy's traits (federation/strategies/).

import { modeTraits, type ServerMode } from '../server/modes/lookup.js';
import { STRATEGY_NAMES, strategyTraits, type StrategyName } from '../federation/strategies/lookup.js';

const meanStrategies = STRATEGY_NAMES.filter((n) => strategyTraits(n).weightedMean === true);
const hideableStrategies = STRATEGY_NAMES.filter((n) => strategyTraits(n).hideable);

interface Plan {
  federation: { mode: ServerMode; strategy: { name: StrategyName; client_optimizer: string }; update_encoding: string };
  security: { tls: boolean };
  privacy: { secure_aggregation: { enabled: boolean }; hide_aggregate: boolean };
}

export function privacyProblems(cfg: Plan): { path: string[]; message: string }[] {
  const out: { path: string[]; message: string }[] = [];
  const { secure_aggregation: secure, hide_aggregate: hide } = cfg.privacy;
  const strategy = cfg.federation.strategy.name;
  const traits = strategyTraits(strategy);
  if (secure.enabled) {
    if (traits.weightedMean !== true)
      out.push({
        path: ['privacy', 'secure_aggregation', 'enabled'],
        message: `secure aggregation computes a weighted mean, which ${strategy} is not (it needs ${traits.weightedMean.needs}); use one of ${meanStrategies.join(', ')}`,
      });
    if (cfg.federation.update_encoding !== 'float32')
      out.push({
        path: ['federation', 'update_encoding'],
        message: 'secure aggregation has its own fixed-point encoding; use update_encoding: float32 with it',
      });
    if (cfg.federation.strategy.client_optimizer === 'average')
      out.push({
        path: ['federation', 'strategy', 'client_optimizer'],
        message:
          "client_optimizer: average would upload each client's optimizer moments in the clear; use keep or reset with secure aggregation",
      });
  }
  if (secure.enabled && !hide && modeTraits(cfg.federation.mode).averagesPartGrads)
    out.push({
      path: ['privacy', 'hide_aggregate'],
      message: `${cfg.federation.mode} mode pads every step's part gradients with the federation secret, which also hides the aggregate; set privacy.hide_aggregate: true too`,
    });
  if (hide) {
    if (!secure.enabled)
      out.push({
        path: ['privacy', 'hide_aggregate'],
        message: 'hide_aggregate masks the secure aggregate; set privacy.secure_aggregation.enabled: true too',
      });
    else if (!traits.hideable)
      out.push({
        path: ['privacy', 'hide_aggregate'],
        message: `with a hidden aggregate the server cannot take ${strategy}'s server-side step; use ${hideableStrategies.join(' or ')}`,
      });
    if (!cfg.security.tls)
      out.push({
        path: ['privacy', 'hide_aggregate'],
        message: 'hide_aggregate needs the federation secret in the client kits (flglm keygen), so security.tls: true',
      });
  }
  return out;
}
