import type { ModelConfig } from './config.js';
import { headDim } from './config.js';
import { Rng } from '../util/rng.js';
import { familyOf } from './families/registry.js';
import { linearTargets } from './families/traits.js';
import { UserError } from '../util/errors.js';
import {
  LINEAR_NAMES,
  layerPrefix,
  type FinetuneMethod,
  type LoraTarget,
  type Param,
  type ParamStore,
  type PeftConfig,
} from './weights.js';

export { LINEAR_NAMES, layerPrefix };
export type {
  FinetuneMethod,
  HalfParam,
  LoraTarget,
  Param,
  ParamStore,
  PeftConfig,
  QuantParam,
  StoredParam,
} from './weights.js';
export { asFloat32, copyParam, float32Copy, float32Of, paramArrays, trainableData } from './weights.js';

/** Shapes of every base weight of the model's family, in the order a reader meets them. */
export function baseParamShapes(c: ModelConfig): [string, number[]][] {
  return familyOf(c.model_type).paramShapes(c);
}

/** Shapes of the PEFT parameters (LoRA A/B or prefix keys/values) for the chosen method. */
export function peftParamShapes(c: ModelConfig, peft: PeftConfig): [string, number[]][] {
  const out: [string, number[]][] = [];
  const shapes = new Map(baseParamShapes(c));
  if (peft.method === 'lora') checkLoraTargets(c, peft.lora.targets);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = layerPrefix(i);
    if (peft.method === 'lora') {
      for (const t of peft.lora.targets) {
        const [fanIn, fanOut] = shapes.get(`${p}.${LINEAR_NAMES[t]}.weight`)!;
        out.push([`${p}.${LINEAR_NAMES[t]}.lora_A`, [fanIn, peft.lora.rank]]);
        out.push([`${p}.${LINEAR_NAMES[t]}.lora_B`, [peft.lora.rank, fanOut]]);
      }
    } else if (peft.method === 'prefix') {
      out.push([`${p}.prefix.key`, [c.num_key_value_heads, peft.prefix.length, headDim(c)]]);
      out.push([`${p}.prefix.value`, [c.num_key_value_heads, peft.prefix.length, headDim(c)]]);
    }
  }
  return out;
}

/** LoRA targets must be projections the family has (Phi-3's are fused: qkv and gate_up). */
function checkLoraTargets(c: ModelConfig, targets: readonly LoraTarget[]): void {
  const have = linearTargets(familyOf(c.model_type).traits);
  const missing = targets.find((t) => !have.includes(t));
  if (missing === undefined) return;
  const fused = have.includes('qkv') ? ' (it fuses q, k, v into qkv_proj and gate, up into gate_up_proj)' : '';
  throw new UserError(
    `finetune.lora.targets: ${c.model_type} has no ${LINEAR_NAMES[missing]}${fused}; its targets are ${have.join(', ')}`,
  );
}

function initTensor(name: string, shape: number[], rng: Rng, normInit: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  if (name.endsWith('norm.weight'))
    data.fill(normInit); // every RMSNorm's scale starts at 1: w = 1, or 1 + w with w = 0 (Gemma)
  else if (name.endsWith('.bias') || name.endsWith('.lora_B')) data.fill(0);
  else {
    const std = name.endsWith('.lora_A') ? 1 / Math.sqrt(shape[0]) : name.includes('prefix') ? 0.5 : 0.02;
    for (let i = 0; i < n; i++) data[i] = std * rng.normal();
  }
  return data;
}

/** Random initial weights (GPT-2/LLaMA-style: N(0, 0.02), norms at 1). */
export function initParams(c: ModelConfig, seed: number): Map<string, Param> {
  const rng = new Rng(seed);
  const normInit = familyOf(c.model_type).traits.norm === 'one-plus-weight' ? 0 : 1;
  return new Map(
    baseParamShapes(c).map(([name, shape]) => [name, { shape, data: initTensor(name, shape, rng, normInit) }]),
  );
}

/** Add freshly initialised PEFT parameters to a store (kept if already present, e.g. on resume). */
export function addPeftParams(store: ParamStore, c: ModelConfig, peft: PeftConfig, seed: number): void {
  const rng = new Rng(seed ^ 0x5eed);
  for (const [name, shape] of peftParamShapes(c, peft)) {
    if (!store.has(name)) store.set(name, { shape, data: initTensor(name, shape, rng, 1) });
  }
}

/** Which parameters train under a method: everything (full), or only the adapters / prefixes. */
export function isTrainable(name: string, method: FinetuneMethod): boolean {
  if (method === 'full') return !name.includes('.lora_') && !name.includes('.prefix.');
  if (method === 'lora') return name.includes('.lora_');
  return name.includes('.prefix.');
}
