import { z } from 'zod';

// The differential-privacy keys under `privacy` (docs/privacy.md): DP-FedAvg of the client parts
// (user-level), clipping and noise on what crosses the cut (example-level), the budget they are
// accounted against, and the leakage monitor. Their combinations are checked in dp-rules.ts.

/** privacy.dp.updates: each client's round update clipped to clip_norm, Gaussian noise noise_multiplier x clip_norm on the sum. */
export const dpUpdatesSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    clip_norm: z.number().positive().default(1),
    noise_multiplier: z.number().min(0).default(1),
    /** Where the noise is added: by each client before (secure) aggregation, or by the server on the visible sum. */
    noise: z.enum(['client', 'server']).default('server'),
    /** Andrew et al. 2021: the clip norm follows the target_quantile of the update norms (geometric steps of lr). */
    adaptive_clip: z
      .strictObject({
        enabled: z.boolean().default(false),
        target_quantile: z.number().gt(0).lt(1).default(0.5),
        lr: z.number().positive().default(0.2),
        /** Noise std of the clipped-count, in clients (the paper's default is clients per round / 20). */
        count_noise: z.number().positive().nullable().default(null),
      })
      .prefault({}),
  })
  .prefault({});

/** privacy.dp.activations: each example's h_A clipped to clip_norm, Gaussian noise noise_multiplier x clip_norm. */
export const dpActivationsSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    clip_norm: z.number().positive().default(1),
    noise_multiplier: z.number().min(0).default(1),
    /** dL/dh_B (which carries the labels' signal) clipped per example to this and noised alike; null: sent as it is. */
    gradient_clip_norm: z.number().positive().nullable().default(null),
    /** DP-SGD on the client parts (per-example clipping of their gradient): not implemented; refused when true. */
    dp_sgd: z.boolean().default(false),
  })
  .prefault({});

export const dpSchema = z.strictObject({ updates: dpUpdatesSchema, activations: dpActivationsSchema }).prefault({});

/** privacy.monitor: the inversion attack on the round's captured activations, every so many rounds. */
export const monitorSchema = z
  .strictObject({
    every_rounds: z.number().int().positive().nullable().default(null),
    /** Stop (pause, resumable) when the attack's ROUGE-L passes this. */
    max_rouge_l: z.number().min(0).max(1).nullable().default(null),
  })
  .prefault({});

export type DpConfig = z.output<typeof dpSchema>;
export type MonitorConfig = z.output<typeof monitorSchema>;
