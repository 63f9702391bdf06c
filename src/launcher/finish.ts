import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.js';
import { renderReport } from '../report/html.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { TrainSummary } from '../training/centralized.js';
import type { GenerationMetrics } from '../training/generation-eval.js';
import type { AttackResult } from '../privacy/attack.js';
import { JsonLinesTail, readSummary, type ClientSummary, type ServerSummary } from './summaries.js';
import { attackFinalRun, exportFinalModel, mergeFinalModel, scoreGenerations } from './final-model.js';

export interface RunSummary {
  mode: string;
  clients: number;
  rounds: number;
  steps: number;
  tokens: number;
  wall_s: number;
  tokens_per_s: number;
  train_loss_final: number;
  eval: { loss: number; perplexity: number; accuracy: number } | null;
  /** Task generate: the final model's greedy generations on the held-out prompts, scored. */
  generation?: GenerationMetrics;
  baseline?: TrainSummary;
  run_dir: string;
  /** Peak resident memory of each process (MiB): the server (trunk workers included) and each client. */
  peak_rss_mib?: Record<string, number>;
  /** `privacy.activation_noise` when it is on (sigma > 0): what the clients added to h_A. */
  activation_noise?: { sigma: number; gradients: boolean };
  /** The final model for the Hugging Face ecosystem: `model-hf/` (LoRA merged) and `adapter/` (LoRA). */
  exports?: { hf?: string; adapter?: string };
  /** `flglm run --attack`: what the inversion attack read back from the captured h_A. */
  attack?: AttackResult;
  /** With differential privacy: the ε the run spent (privacy/dp-budget.ts), and why it stopped early if it did. */
  privacy?: ServerSummary['privacy'];
  stopped?: string;
}

export interface FinishInput {
  runDir: string;
  cfg: ExperimentConfig;
  configText: string;
  wall: number;
  clientIds: string[];
  testDir: string;
  baseline?: TrainSummary;
  attack: boolean;
}

/** The run's summary from the summaries the server and clients wrote (metrics.jsonl feeds the report only). */
export async function finishRun(run: FinishInput): Promise<RunSummary> {
  const { runDir, cfg, wall, clientIds, testDir, baseline } = run;
  const summaryPath = (who: string) => join(runDir, 'summaries', `${who}.json`);
  const f = cfg.federation;
  const server = readSummary<ServerSummary>(summaryPath('server'), 'the server');
  const clients = clientIds.map((id) => readSummary<ClientSummary>(summaryPath(id), id)).filter((c) => c.steps > 0);
  // Each client's last few losses, averaged over the clients that trained.
  const last = clients.map((c) => c.losses.slice(-3).reduce((a, b) => a + b, 0) / Math.min(3, c.losses.length));
  const e = server.eval_summary;
  const summary: RunSummary = {
    mode: server.mode,
    clients: clients.length,
    rounds: server.history.length,
    steps: server.steps,
    tokens: server.tokens,
    wall_s: wall,
    tokens_per_s: server.tokens / wall,
    train_loss_final: last.reduce((a, b) => a + b, 0) / last.length,
    eval: e.examples ? { loss: e.loss, perplexity: Math.exp(e.loss), accuracy: e.accuracy } : null,
    ...(baseline ? { baseline } : {}),
    run_dir: runDir,
    ...(cfg.privacy.activation_noise.sigma > 0 ? { activation_noise: cfg.privacy.activation_noise } : {}),
    ...(server.privacy ? { privacy: server.privacy } : {}),
    ...(server.stopped ? { stopped: server.stopped } : {}),
    peak_rss_mib: {
      server: server.peak_rss_mib ?? NaN,
      ...Object.fromEntries(clients.map((c) => [c.client_id, c.peak_rss_mib])),
    },
  };
  const recs = readMetrics(join(runDir, 'metrics.jsonl'));
  mergeFinalModel(runDir);
  const generation = await scoreGenerations(runDir, cfg, testDir);
  if (generation) summary.generation = generation;
  const exports = exportFinalModel(runDir);
  if (exports) summary.exports = exports;
  if (run.attack) summary.attack = await attackFinalRun(runDir, cfg);
  writeFileAtomic(join(runDir, 'summary.json'), JSON.stringify(summary, null, 2));
  const baselineLossesPath = join(runDir, 'baseline-losses.json');
  writeFileAtomic(
    join(runDir, 'report.html'),
    renderReport({
      meta: {
        name: cfg.name,
        mode: f.mode,
        strategy: f.strategy.name,
        rounds: f.rounds,
        clients: clientIds.length,
        state: 'finished',
      },
      records: recs,
      summary: summary as unknown as Record<string, unknown>,
      baselineLosses: existsSync(baselineLossesPath) ? JSON.parse(readFileSync(baselineLossesPath, 'utf8')) : undefined,
      config: run.configText,
      clientPhases: clients.map((c) => ({ client: c.client_id, steps: Math.max(0, c.steps - 1), phases: c.phases })), // phases skip the first step
    }),
  );
  return summary;
}

/** Every complete record of a metrics.jsonl file. */
export function readMetrics(path: string): Record<string, unknown>[] {
  return new JsonLinesTail(path).poll();
}
