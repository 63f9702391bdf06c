// What secure aggregation and a hidden aggregate can be combined with, checked with the config:
// each problem names the key and the fix. Kept apart from schema.ts, which stays a table of keys.

/** Strategies whose aggregate is the weighted mean of the client parts (all secure aggregation can compute). */
export const SECURE_STRATEGIES = ['fedavg', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'];
/** Of those, the ones that need nothing but the mean on the clients (the server sees no aggregate to step on). */
export const HIDDEN_STRATEGIES = ['fedavg', 'fedprox'];

interface Plan {
  federation: { strategy: { name: string; client_optimizer: string }; update_encoding: string };
  security: { tls: boolean };
  privacy: { secure_aggregation: { enabled: boolean }; hide_aggregate: boolean };
}

export function privacyProblems(cfg: Plan): { path: string[]; message: string }[] {
  const out: { path: string[]; message: string }[] = [];
  const { secure_aggregation: secure, hide_aggregate: hide } = cfg.privacy;
  const strategy = cfg.federation.strategy.name;
  if (secure.enabled) {
    if (!SECURE_STRATEGIES.includes(strategy))
      out.push({
        path: ['privacy', 'secure_aggregation', 'enabled'],
        message: `secure aggregation computes a weighted mean, which ${strategy} is not (it needs ${strategy === 'relay' ? "each client's own parts" : strategy === 'fedmedian' ? 'every update' : 'per-client control variates'}); use one of ${SECURE_STRATEGIES.join(', ')}`,
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
  if (hide) {
    if (!secure.enabled)
      out.push({
        path: ['privacy', 'hide_aggregate'],
        message: 'hide_aggregate masks the secure aggregate; set privacy.secure_aggregation.enabled: true too',
      });
    else if (!HIDDEN_STRATEGIES.includes(strategy))
      out.push({
        path: ['privacy', 'hide_aggregate'],
        message: `with a hidden aggregate the server cannot take ${strategy}'s server-side step; use ${HIDDEN_STRATEGIES.join(' or ')}`,
      });
    if (!cfg.security.tls)
      out.push({
        path: ['privacy', 'hide_aggregate'],
        message: 'hide_aggregate needs the federation secret in the client kits (flglm keygen), so security.tls: true',
      });
  }
  return out;
}
