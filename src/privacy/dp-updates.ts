import type { ExperimentConfig } from '../config/schema.js';
import { SecureGaussian } from './secure-noise.js';

// DP-FedAvg of the client parts (McMahan et al. 2018, user-level DP): each client's round update
// w − w_round is clipped to norm C, every client weighs the same in the mean (sample counts are
// private and would scale the sensitivity), and Gaussian noise with std σ·C is added to the sum:
// by each client before secure aggregation, its share σ·C/√t where t clients at least are summed
// (the unmasking threshold), or by the server to the sum it sees. Strategy-agnostic: it works on
// the parameters before the upload and on the mean before the strategy's step.

type Params = Map<string, Float32Array>;

/** The secure sum's smallest number of clients: the unmasking threshold (its default, a majority). */
export function secureThreshold(cfg: ExperimentConfig): number {
  return cfg.privacy.secure_aggregation.threshold ?? Math.floor(cfg.federation.clients / 2) + 1;
}

/** The L2 norm of params − start over every tensor. */
export function updateNorm(start: Params, params: Params): number {
  let sq = 0;
  for (const [n, w] of params) {
    const w0 = start.get(n)!;
    for (let i = 0; i < w.length; i++) sq += (w[i] - w0[i]) ** 2;
  }
  return Math.sqrt(sq);
}

/**
 * The client's side, in place before its parts go up: the update clipped to `clip` and, with
 * noise: client, its share of the noise. Returns the update's norm before clipping.
 */
export function privatizeClientUpdate(
  cfg: ExperimentConfig,
  start: Params,
  params: Params,
  clip: number,
  rng = new SecureGaussian(),
): number {
  const dp = cfg.privacy.dp.updates;
  const norm = updateNorm(start, params);
  const scale = Math.min(1, clip / Math.max(norm, 1e-30));
  const std = dp.noise === 'client' ? (dp.noise_multiplier * clip) / Math.sqrt(secureThreshold(cfg)) : 0;
  for (const [n, w] of params) {
    const w0 = start.get(n)!;
    for (let i = 0; i < w.length; i++) w[i] = w0[i] + scale * (w[i] - w0[i]);
    if (std > 0) {
      // Noise on the update, which is on the parameter: w0 is the same on every client.
      rng.addTo(w, std);
    }
  }
  return norm;
}

/** A client's weight in the mean: its examples, or 1 for every client under DP-FedAvg. */
export function meanWeight(cfg: ExperimentConfig, examples: number): number {
  return cfg.privacy.dp.updates.enabled ? 1 : examples;
}

/**
 * The server's side: the mean of `clients` equally weighted updates, with noise: server its noise
 * σ·C on their sum (σ·C / clients on the mean), in place.
 */
export function privatizeMean(
  cfg: ExperimentConfig,
  mean: Params,
  clients: number,
  clip: number,
  rng = new SecureGaussian(),
): void {
  const dp = cfg.privacy.dp.updates;
  if (dp.noise !== 'server') return;
  const std = (dp.noise_multiplier * clip) / Math.max(1, clients);
  for (const w of mean.values()) rng.addTo(w, std);
}
