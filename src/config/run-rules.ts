import type { ExperimentConfig } from './schema.js';

// Keys that apply to one kind of run only, checked where a run of the other kind starts: a key the
// config documents for every run is honoured by each, or refused there with the fix, never ignored
// (test/config/documented-keys.test.ts checks every code path reads every key it is given).

/** What a federated run (flglm run, flglm server) cannot honour, as one-line errors naming the key and the fix. */
export function federatedProblems(cfg: ExperimentConfig): string[] {
  const out: string[] = [];
  const accum = cfg.optimizer.grad_accum;
  if (accum !== 1)
    out.push(
      `optimizer.grad_accum: ${accum}: a federated run takes one optimizer step per batch on every side (each client step is one trunk step); set grad_accum: 1 and raise data.batch_size instead (flglm train honours grad_accum)`,
    );
  const { heartbeat_ms: beat, client_timeout_ms: timeout } = cfg.federation;
  // A client waiting for its turn counts the server's heartbeats as signs of life.
  if (2 * beat > timeout)
    out.push(
      `federation.heartbeat_ms: ${beat} with client_timeout_ms ${timeout}: a client waiting for its turn would see the server silent; keep heartbeat_ms at most half of client_timeout_ms`,
    );
  // Designed for, not built (docs/privacy.md says what each would take).
  if (cfg.privacy.dp.updates.adaptive_clip.enabled)
    out.push(
      'privacy.dp.updates.adaptive_clip.enabled: adaptive clipping is not implemented in this version (its count_noise, target_quantile and lr are unused); set a fixed clip_norm (docs/privacy.md: how to choose it)',
    );
  if (cfg.privacy.dp.activations.dp_sgd)
    out.push(
      "privacy.dp.activations.dp_sgd: DP-SGD on the client parts (per-example clipping of the head's and tail's gradients) is not implemented: the parts train on every example unclipped, so dp.activations' epsilon covers each step's h_A given the parts (docs/privacy.md); set dp_sgd: false",
    );
  return out;
}
