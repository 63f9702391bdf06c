import type { ExperimentConfig } from '../config/schema.js';
import type { TensorData } from '../runtime/tensor.js';
import { ActivationNoise } from './activation-noise.js';
import { SecureGaussian } from './secure-noise.js';

/** What a client does to its step tensors before they leave (ClientLink): h_A always, dL/dh_B with `gradients`. */
export interface UplinkNoise {
  /** `gradient`: t is dL/dh_B. */
  apply(t: TensorData, gradient?: boolean): TensorData;
  readonly gradients: boolean;
}

/**
 * privacy.dp.activations (example-level DP on what crosses the cut): each example's h_A, all its
 * positions together (rows of [S, D] of a [B, S, D] batch), is clipped to L2 norm C and gets
 * Gaussian noise of std σ·C per coordinate, so one step's h_A is a Gaussian mechanism with
 * sensitivity C per example (replacing one example changes one row block by at most 2C; Opacus'
 * add/remove convention, C, is what privacy/dp-budget.ts accounts). The head still trains on the
 * clean h_A; its parameters are not trained with DP-SGD (refused by name in the config), so the
 * guarantee covers each released h_A given the client parts (docs/privacy.md).
 */
export class ActivationDp implements UplinkNoise {
  readonly gradients: boolean;
  private readonly rng = new SecureGaussian();

  constructor(
    readonly clipNorm: number,
    readonly noiseMultiplier: number,
    /** dL/dh_B's per-example clip norm (gradient_clip_norm); null: dL/dh_B goes up as it is. */
    readonly gradientClipNorm: number | null = null,
  ) {
    this.gradients = gradientClipNorm !== null;
  }

  /** h_A, or with `gradient` dL/dh_B, each example clipped to its norm and noised. */
  apply(t: TensorData, gradient = false): TensorData {
    return this.clipAndNoise(t, gradient && this.gradientClipNorm !== null ? this.gradientClipNorm : this.clipNorm);
  }

  private clipAndNoise(t: TensorData, clipNorm: number): TensorData {
    const src = t.data as Float32Array;
    const rows = t.shape[0];
    const per = src.length / rows;
    const data = new Float32Array(src.length);
    for (let b = 0; b < rows; b++) {
      const at = b * per;
      let sq = 0;
      for (let i = at; i < at + per; i++) sq += src[i] * src[i];
      const scale = Math.min(1, clipNorm / Math.max(Math.sqrt(sq), 1e-30));
      for (let i = at; i < at + per; i++) data[i] = scale * src[i];
    }
    this.rng.addTo(data, this.noiseMultiplier * clipNorm);
    return { ...t, data };
  }
}

/** The client's uplink noise from the plan: dp.activations (accounted), or activation_noise (not). */
export function uplinkNoise(cfg: ExperimentConfig, clientId: string): UplinkNoise {
  const a = cfg.privacy.dp.activations;
  if (a.enabled) return new ActivationDp(a.clip_norm, a.noise_multiplier, a.gradient_clip_norm);
  const n = cfg.privacy.activation_noise;
  return new ActivationNoise(n.sigma, n.gradients, cfg.seed, clientId, n.relative);
}
