import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.js';
import { readSilo } from '../data/examples.js';
import { exportPeftAdapter } from '../model/hf.js';
import { loadCheckpoint, saveCheckpoint } from '../training/checkpoint.js';
import { exportHf } from '../training/export.js';
import { evaluateGeneration, generationEvalOptions, type GenerationMetrics } from '../training/generation-eval.js';
import { loadModelFolder } from '../training/model-folder.js';
import { DEFAULT_ATTACK, invertActivations, serverViewHead, type AttackResult } from '../privacy/attack.js';
import { readCapture } from '../privacy/capture.js';
import { writeFileAtomic } from '../util/atomic-write.js';

// What a finished `flglm run` makes of its checkpoints: the whole model, its exports, its scores.

/**
 * The whole trained model in one checkpoint (<run>/model): the averaged client parts (every client
 * holds the same ones after the last FedAvg) with the server's trunk. Only an operator running both
 * sides on one machine can do this; in a real deployment neither side has the other's part.
 */
export function mergeFinalModel(runDir: string): void {
  const clientsDir = join(runDir, 'checkpoints', 'clients');
  const serverDir = join(runDir, 'checkpoints', 'server', 'latest');
  if (!existsSync(clientsDir) || !existsSync(join(serverDir, 'checkpoint.json'))) return;
  const first = readdirSync(clientsDir).sort()[0];
  if (!first) return;
  const client = loadCheckpoint(join(clientsDir, first));
  const server = loadCheckpoint(serverDir);
  for (const [name, t] of server.store) client.store.set(name, t);
  saveCheckpoint(
    join(runDir, 'model'),
    client.store,
    {
      model: client.meta.model,
      peft: client.meta.peft,
      step: client.meta.step,
      round: server.meta.round,
      base_model: client.meta.base_model,
    },
    undefined,
    undefined,
    join(clientsDir, first),
  );
}

/**
 * Task generate: the merged model's greedy generations on the held-out prompts, scored as the
 * centralized baseline's are (evaluation during training reports teacher-forced metrics only).
 */
export async function scoreGenerations(
  runDir: string,
  cfg: ExperimentConfig,
  testDir: string,
): Promise<GenerationMetrics | undefined> {
  const dir = join(runDir, 'model');
  if (cfg.data.task !== 'generate' || !existsSync(join(dir, 'checkpoint.json'))) return undefined;
  const m = loadModelFolder(dir);
  return evaluateGeneration(m, m.tokenizer, readSilo(testDir), generationEvalOptions(cfg), {
    device: cfg.runtime.device,
    threads: cfg.runtime.threads,
    arena: cfg.runtime.memory_arena,
  });
}

/** `model/` as a Hugging Face folder (LoRA merged) and, for LoRA, a PEFT adapter; prefix tuning has no HF layout. */
export function exportFinalModel(runDir: string): { hf?: string; adapter?: string } | undefined {
  const dir = join(runDir, 'model');
  if (!existsSync(join(dir, 'checkpoint.json'))) return undefined;
  const m = loadModelFolder(dir);
  if (m.peft.method === 'prefix') return undefined;
  const hf = join(runDir, 'model-hf');
  exportHf(m, hf, { mergeLora: true });
  if (m.peft.method !== 'lora') return { hf };
  const adapter = join(runDir, 'adapter');
  exportPeftAdapter(adapter, m.config, m.store, m.peft, m.baseModel);
  return { hf, adapter };
}

/**
 * `flglm run --attack`: the inversion attack on what the server captured (privacy/attack.ts), with
 * the head the server holds at the end and the plan's noise; written to <run>/attack.json.
 */
export async function attackFinalRun(runDir: string, cfg: ExperimentConfig): Promise<AttackResult> {
  const head = serverViewHead(cfg, join(runDir, 'checkpoints', 'server', 'latest'));
  const result = await invertActivations(cfg, head, readCapture(join(runDir, 'capture')), {
    ...DEFAULT_ATTACK,
    sigma: cfg.privacy.activation_noise.sigma,
    relative: cfg.privacy.activation_noise.relative,
  });
  writeFileAtomic(join(runDir, 'attack.json'), JSON.stringify(result, null, 2));
  return result;
}
