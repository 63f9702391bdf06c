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
  return out;
}
