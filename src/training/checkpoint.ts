import { existsSync, readFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamStore, PeftConfig } from '../model/params.js';
import { loadSafetensors, saveSafetensors, type NamedTensor } from '../model/safetensors.js';
import { copyModelAssets } from '../model/assets.js';
import { slotsFromTensors, slotsToTensors, type OptimizerState } from './optimizer.js';

/**
 * A checkpoint folder: model.safetensors (weights), optimizer.safetensors (moments),
 * checkpoint.json (config, step, data position, RNG state) and the model's tokenizer and
 * generation files when it has them (`assetsFrom`: the Hugging Face folder it came from). The folder is written under a temp
 * name and renamed into place, and checkpoint.json is written last, so a half-written checkpoint
 * has no checkpoint.json and is never loaded.
 */
export interface CheckpointMeta {
  format: 'flglm-checkpoint-1';
  model: ModelConfig;
  peft: PeftConfig;
  step: number;
  round?: number;
  optimizer?: { name: string; step: number };
  data?: Record<string, unknown>;
  rng?: number[];
  extra?: Record<string, unknown>;
  /** The pretrained model this one was fine-tuned from (a Hugging Face folder or name), if any. */
  base_model?: string;
}

export function saveCheckpoint(dir: string, store: ParamStore, meta: Omit<CheckpointMeta, 'format'>, optimizer?: OptimizerState, extraTensors?: Map<string, NamedTensor>, assetsFrom?: string | null): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  saveSafetensors(join(tmp, 'model.safetensors'), store as Map<string, NamedTensor>);
  if (optimizer) {
    saveSafetensors(join(tmp, 'optimizer.safetensors'), new Map(slotsToTensors(optimizer.slots).map(([n, a]) => [n, { shape: [a.length], data: a }])));
  }
  if (extraTensors) saveSafetensors(join(tmp, 'extra.safetensors'), extraTensors);
  copyModelAssets(assetsFrom, tmp);
  const full: CheckpointMeta = { format: 'flglm-checkpoint-1', ...meta, optimizer: optimizer ? { name: optimizer.name, step: optimizer.step } : undefined };
  writeFileAtomic(join(tmp, 'checkpoint.json'), JSON.stringify(full, null, 2));
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

export function loadCheckpoint(dir: string): { store: ParamStore; meta: CheckpointMeta; optimizer?: OptimizerState; extra?: Map<string, NamedTensor> } {
  const metaPath = join(dir, 'checkpoint.json');
  if (!existsSync(metaPath)) throw new UserError(`no complete checkpoint in ${dir} (checkpoint.json is missing). Fix: point to a folder written by flglm, e.g. runs/<run>/checkpoints/latest`);
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as CheckpointMeta;
  if (meta.format !== 'flglm-checkpoint-1') throw new UserError(`${metaPath}: unknown checkpoint format ${String(meta.format)}`);
  const store: ParamStore = loadSafetensors(join(dir, 'model.safetensors')).tensors;
  let optimizer: OptimizerState | undefined;
  if (meta.optimizer && existsSync(join(dir, 'optimizer.safetensors'))) {
    const slots = slotsFromTensors([...loadSafetensors(join(dir, 'optimizer.safetensors')).tensors].map(([n, t]) => [n, t.data]));
    optimizer = { name: meta.optimizer.name, step: meta.optimizer.step, slots };
  }
  const extraPath = join(dir, 'extra.safetensors');
  const extra = existsSync(extraPath) ? loadSafetensors(extraPath).tensors : undefined;
  return { store, meta, optimizer, extra };
}
