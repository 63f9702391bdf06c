import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../../config/load.js';
import type { ExperimentConfig } from '../../config/schema.js';
import { UserError } from '../../util/errors.js';
import { JsonLinesTail } from '../../util/json-lines.js';
import type { RunMeta, RunRecord } from '../run-view.js';

/** Where a dashboard's records come from: a run folder on disk, or the server process itself. */
export interface RunSource {
  meta(): RunMeta;
  /** What only a finished run has (summary.json, baseline-losses.json). */
  extras(): { summary?: RunRecord; baselineLosses?: number[] };
  /** The records added since the last call. */
  poll(): RunRecord[];
}

export function metaOf(cfg: ExperimentConfig, state: RunMeta['state']): RunMeta {
  const f = cfg.federation;
  return { name: cfg.name, mode: f.mode, strategy: f.strategy.name, rounds: f.rounds, clients: f.clients, state };
}

function readJson<T>(path: string): T | undefined {
  try {
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined;
  } catch {
    return undefined; // being written: the next poll reads it whole (writes are atomic renames)
  }
}

/**
 * A run folder (`flglm run`'s): config.yaml, status.json, metrics.jsonl, and once done summary.json.
 * `cfg`: the run's config, for a folder whose files are still to come (`flglm run --ui`).
 */
export function folderSource(runDir: string, cfg?: ExperimentConfig): RunSource {
  const configPath = join(runDir, 'config.yaml');
  if (!cfg && (!existsSync(configPath) || !existsSync(join(runDir, 'metrics.jsonl'))))
    throw new UserError(
      `${runDir} is not a run folder (no config.yaml and metrics.jsonl). Fix: give a folder flglm run made, e.g. runs/<name>-<time>`,
    );
  cfg ??= loadConfigFile(configPath);
  const tail = new JsonLinesTail(join(runDir, 'metrics.jsonl'));
  const state = (): RunMeta['state'] => {
    const s = readJson<{ state: string }>(join(runDir, 'status.json'))?.state;
    if (s === 'finished' || s === 'failed') return s;
    return s === undefined && existsSync(join(runDir, 'summary.json')) ? 'finished' : 'live';
  };
  return {
    meta: () => metaOf(cfg, state()),
    extras: () => ({
      summary: readJson<RunRecord>(join(runDir, 'summary.json')),
      baselineLosses: readJson<number[]>(join(runDir, 'baseline-losses.json')),
    }),
    poll: () => tail.poll(),
  };
}

/** Records handed over in this process (`flglm server --ui-port`): the server's own metrics as it makes them. */
export class LiveSource implements RunSource {
  private queue: RunRecord[] = [];
  state: RunMeta['state'] = 'live';
  constructor(private readonly cfg: ExperimentConfig) {}
  push(r: RunRecord): void {
    this.queue.push(r);
  }
  meta(): RunMeta {
    return metaOf(this.cfg, this.state);
  }
  extras() {
    return {};
  }
  poll(): RunRecord[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }
}
