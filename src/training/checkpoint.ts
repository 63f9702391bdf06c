import { existsSync, readFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import type { ModelConfig } from '../model/config.js';
import { isTrainable, type ParamStore, type PeftConfig } from '../model/params.js';
import { importHfFolder } from '../model/hf.js';
import { loadSafetensors, saveSafetensors, type NamedTensor } from '../model/safetensors.js';
import { copyModelAssets } from '../model/assets.js';
import type { FrozenQuant } from '../model/quantize.js';
export type { FrozenQuant };
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
  /**
   * Weights this checkpoint does not store because they never changed: a LoRA or prefix model
   * fine-tuned from a Hugging Face folder keeps its adapters here and reads the frozen base weights
   * back from that folder (`from`, absolute) when loaded. A Qwen2.5-0.5B LoRA round checkpoint is a
   * few MB instead of 2 GB, and writing it no longer copies the whole part in memory.
   */
  frozen?: { from: string; names: string[] };
  /** A base held quantized (`model.frozen_dtype` int8 / int4): its frozen weights are read back quantized the same way. */
  quantized_base?: FrozenQuant;
}

/** Whether checkpoints of this model leave their frozen weights in the base model folder. */
export function referencesBase(peft: PeftConfig, baseModel: string | null | undefined): boolean {
  return peft.method !== 'full' && !!baseModel && existsSync(join(baseModel, 'config.json'));
}

/**
 * The frozen weights a checkpoint can leave out: with PEFT and a base model folder, every weight that
 * does not train (those in `store` and the `alsoFrozen` names the caller holds no copy of).
 */
function frozenReference(
  store: ParamStore,
  meta: Omit<CheckpointMeta, 'format'>,
  alsoFrozen: readonly string[],
): CheckpointMeta['frozen'] {
  const base = meta.base_model;
  if (!base || !referencesBase(meta.peft, base)) return undefined;
  const names = [...new Set([...store.keys(), ...alsoFrozen])].filter((n) => !isTrainable(n, meta.peft.method));
  return names.length ? { from: resolve(base), names } : undefined;
}

/** The quantization of the store's frozen weights, if any. */
function quantizationOf(store: ParamStore): FrozenQuant | undefined {
  const q = [...store.values()].find((p) => p.quant)?.quant;
  return q ? { dtype: q.bits === 8 ? 'int8' : 'int4', compute: q.compute } : undefined;
}

/**
 * `frozenNames`: frozen weights of the model that `store` does not hold (the server's trunk replica
 * sends only what trains); they are recorded as coming from the base model like the others.
 */
export function saveCheckpoint(
  dir: string,
  store: ParamStore,
  meta: Omit<CheckpointMeta, 'format'>,
  optimizer?: OptimizerState,
  extraTensors?: Map<string, NamedTensor>,
  assetsFrom?: string | null,
  frozenNames: readonly string[] = [],
): void {
  const frozen = frozenReference(store, meta, frozenNames);
  const skip = new Set(frozen?.names ?? []);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  saveSafetensors(join(tmp, 'model.safetensors'), new Map([...store].filter(([n]) => !skip.has(n))));
  if (optimizer) {
    saveSafetensors(
      join(tmp, 'optimizer.safetensors'),
      new Map(slotsToTensors(optimizer.slots).map(([n, a]) => [n, { shape: [a.length], data: a }])),
    );
  }
  if (extraTensors) saveSafetensors(join(tmp, 'extra.safetensors'), extraTensors);
  copyModelAssets(assetsFrom, tmp);
  const full: CheckpointMeta = {
    format: 'flglm-checkpoint-1',
    ...meta,
    optimizer: optimizer ? { name: optimizer.name, step: optimizer.step } : undefined,
    ...(frozen ? { frozen } : {}),
  };
  const quantized = meta.quantized_base ?? quantizationOf(store);
  if (frozen && quantized) full.quantized_base = quantized;
  writeFileAtomic(join(tmp, 'checkpoint.json'), JSON.stringify(full, null, 2));
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/** The frozen weights a checkpoint names, from its base model folder (which must still match). */
function loadFrozen(dir: string, meta: CheckpointMeta): ParamStore {
  const { from, names } = meta.frozen!;
  if (!existsSync(join(from, 'config.json'))) {
    throw new UserError(
      `${dir} stores only the weights that trained (${meta.peft.method}); its ${names.length} frozen weights come from the base model ${from}, which is not there. Fix: put the base model folder back at that path, or run from the machine that has it`,
    );
  }
  const wanted = new Set(names);
  const quant = meta.quantized_base;
  const base = importHfFolder(from, () => (n) => wanted.has(n), {
    ...(quant ? { frozen: { method: meta.peft.method, dtype: quant.dtype, compute: quant.compute } } : {}),
  });
  for (const key of ['hidden_size', 'num_hidden_layers', 'vocab_size', 'intermediate_size'] as const) {
    if (base.config[key] !== meta.model[key])
      throw new UserError(
        `${dir}: its base model ${from} has ${key} ${base.config[key]}, the checkpoint was trained with ${meta.model[key]} (a different model is at that path). Fix: put the original base model back there`,
      );
  }
  const missing = names.filter((n) => !base.store.has(n));
  if (missing.length)
    throw new UserError(
      `${dir}: the base model ${from} has no ${missing[0]}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}`,
    );
  return base.store;
}

export function loadCheckpoint(dir: string): {
  store: ParamStore;
  meta: CheckpointMeta;
  optimizer?: OptimizerState;
  extra?: Map<string, NamedTensor>;
} {
  const metaPath = join(dir, 'checkpoint.json');
  if (!existsSync(metaPath))
    throw new UserError(
      `no complete checkpoint in ${dir} (checkpoint.json is missing). Fix: point to a folder written by flglm, e.g. runs/<run>/checkpoints/latest`,
    );
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as CheckpointMeta;
  if (meta.format !== 'flglm-checkpoint-1')
    throw new UserError(`${metaPath}: unknown checkpoint format ${String(meta.format)}`);
  const store: ParamStore = loadSafetensors(join(dir, 'model.safetensors')).tensors;
  if (meta.frozen) for (const [n, t] of loadFrozen(dir, meta)) store.set(n, t);
  let optimizer: OptimizerState | undefined;
  if (meta.optimizer && existsSync(join(dir, 'optimizer.safetensors'))) {
    const slots = slotsFromTensors(
      [...loadSafetensors(join(dir, 'optimizer.safetensors')).tensors].map(([n, t]) => [n, t.data]),
    );
    optimizer = { name: meta.optimizer.name, step: meta.optimizer.step, slots };
  }
  const extraPath = join(dir, 'extra.safetensors');
  const extra = existsSync(extraPath) ? loadSafetensors(extraPath).tensors : undefined;
  return { store, meta, optimizer, extra };
}
