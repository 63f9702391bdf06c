import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { ModelConfig } from './config.js';
import { familyOf } from './families/registry.js';
import { linearTargets } from './families/traits.js';
import { transpose2d } from './layout.js';
import { SafetensorsFile, saveSafetensors, type NamedTensor } from './safetensors.js';
import {
  LINEAR_NAMES,
  layerPrefix,
  trainableData,
  type LoraTarget,
  type Param,
  type ParamStore,
  type PeftConfig,
} from './weights.js';

/**
 * LoRA adapters in PEFT's layout: adapter_config.json + adapter_model.safetensors, the modules named
 * as the family names them (Phi-3's fused qkv_proj and gate_up_proj included). PEFT stores lora_A
 * as [r, in] and lora_B as [out, r] (nn.Linear layout); flglm keeps [in, r] and [r, out].
 */
const moduleOf = (t: LoraTarget) => LINEAR_NAMES[t].split('.').pop()!;

/** `baseModel`: what PEFT loads the adapter onto (a Hub name or folder; default the model_type). */
export function exportPeftAdapter(
  dir: string,
  config: ModelConfig,
  store: ParamStore,
  peft: PeftConfig,
  baseModel?: string,
): void {
  if (peft.method !== 'lora') throw new UserError('only LoRA adapters can be exported in PEFT layout');
  const out = new Map<string, NamedTensor>();
  for (const [name, t] of store) {
    const m = /^(.*)\.lora_([AB])$/.exec(name);
    if (!m) continue;
    out.set(
      `base_model.model.${m[1]}.lora_${m[2]}.weight`,
      transpose2d({ shape: t.shape, data: trainableData(t, name) }),
    );
  }
  mkdirSync(dir, { recursive: true });
  saveSafetensors(join(dir, 'adapter_model.safetensors'), out, { format: 'pt' });
  writeFileAtomic(
    join(dir, 'adapter_config.json'),
    JSON.stringify(
      {
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        r: peft.lora.rank,
        lora_alpha: peft.lora.alpha,
        lora_dropout: peft.lora.dropout,
        target_modules: peft.lora.targets.map(moduleOf),
        bias: 'none',
        base_model_name_or_path: baseModel ?? config.model_type,
      },
      null,
      2,
    ),
  );
}

/** adapter_config.json keys whose other values change what the adapter computes (PEFT's defaults here). */
const PLAIN_LORA: Record<string, unknown[]> = {
  use_rslora: [false, undefined],
  use_dora: [false, undefined],
  bias: ['none', undefined],
  fan_in_fan_out: [false, undefined],
  lora_bias: [false, undefined],
  modules_to_save: [null, undefined],
  layers_to_transform: [null, undefined],
  exclude_modules: [null, undefined],
  target_parameters: [null, undefined],
};

/** A PEFT LoRA adapter for a model of `config`: its settings and the adapters in flglm's layout. */
export function importPeftAdapter(dir: string, config: ModelConfig): { peft: PeftConfig; tensors: Map<string, Param> } {
  const cfgPath = join(dir, 'adapter_config.json');
  if (!existsSync(cfgPath)) throw new UserError(`${dir}: no adapter_config.json; expected a PEFT adapter folder`);
  const a = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  const bad = (key: string, why: string): never => {
    throw new UserError(`${cfgPath}: ${key} ${JSON.stringify(a[key])} is not supported (${why})`);
  };
  if (a.peft_type !== 'LORA') bad('peft_type', 'only LORA adapters are read');
  for (const [key, allowed] of Object.entries(PLAIN_LORA))
    if (!allowed.includes(a[key])) bad(key, 'flglm computes plain LoRA: x A B * alpha / r');
  for (const key of ['rank_pattern', 'alpha_pattern'])
    if (a[key] && Object.keys(a[key] as object).length) bad(key, 'one rank and alpha for every module');
  const names = a.target_modules;
  if (!Array.isArray(names)) bad('target_modules', 'a list of module names');
  const have = linearTargets(familyOf(config.model_type).traits);
  const targets = (names as string[]).map((n) => {
    const t = have.find((x) => moduleOf(x) === n);
    return t ?? bad('target_modules', `${config.model_type}'s projections are ${have.map(moduleOf).join(', ')}`);
  });
  const [rank, alpha] = [a.r, a.lora_alpha];
  if (typeof rank !== 'number' || typeof alpha !== 'number') bad('r', 'r and lora_alpha must be numbers');
  const weights = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  const tensors = new Map<string, Param>();
  for (let l = 0; l < config.num_hidden_layers; l++)
    for (const t of targets)
      for (const ab of ['A', 'B']) {
        const module = `${layerPrefix(l)}.${LINEAR_NAMES[t]}`;
        const key = `base_model.model.${module}.lora_${ab}.weight`;
        if (!weights.names().includes(key)) throw new UserError(`${dir}: the adapter has no ${key}`);
        const t2 = transpose2d(weights.read(key) as NamedTensor);
        tensors.set(`${module}.lora_${ab}`, { shape: t2.shape, data: t2.data });
      }
  const dropout = typeof a.lora_dropout === 'number' ? a.lora_dropout : 0;
  return {
    peft: {
      method: 'lora',
      lora: { rank: rank as number, alpha: alpha as number, dropout, targets },
      prefix: { length: 0 },
    },
    tensors,
  };
}
