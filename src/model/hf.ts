import { existsSync, readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { ModelConfig } from './config.js';
import { fromHfConfig, toHfConfig } from './hf-config.js';
import { baseParamShapes, type ParamStore, type PeftConfig } from './params.js';
import { loadSafetensors, saveSafetensors, type NamedTensor } from './safetensors.js';

/**
 * Hugging Face LLaMA/Qwen2-style folders. HF stores nn.Linear weights as [out, in]; flglm keeps
 * [in, out] so MatMul needs no transpose, so linear weights (and lm_head) are transposed on the way
 * in and out. Everything else maps by name.
 */
function isLinear(name: string): boolean {
  return /_proj\.weight$/.test(name) || name === 'lm_head.weight';
}

function transpose2d(t: NamedTensor): NamedTensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return { shape: [c, r], data: out };
}

export function importHfFolder(dir: string): { config: ModelConfig; store: ParamStore } {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new UserError(`${dir}: no config.json; expected a Hugging Face model folder (config.json + *.safetensors)`);
  const config = fromHfConfig(JSON.parse(readFileSync(cfgPath, 'utf8')));
  const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  if (files.length === 0) throw new UserError(`${dir}: no .safetensors weights found (PyTorch .bin files are not supported; convert with save_pretrained(safe_serialization=True))`);
  const raw = new Map<string, NamedTensor>();
  for (const f of files) for (const [k, v] of loadSafetensors(join(dir, f)).tensors) raw.set(k, v);
  const store: ParamStore = new Map();
  for (const [name, shape] of baseParamShapes(config)) {
    const t = raw.get(name);
    if (!t) throw new UserError(`${dir}: weight ${name} is missing from the safetensors files`);
    const mapped = isLinear(name) ? transpose2d(t) : t;
    if (mapped.shape.join() !== shape.join()) throw new UserError(`${dir}: weight ${name} has shape [${t.shape}], config.json implies [${shape}]`);
    store.set(name, mapped);
  }
  return { config, store };
}

export function exportHfFolder(dir: string, config: ModelConfig, store: ParamStore): void {
  mkdirSync(dir, { recursive: true });
  const out = new Map<string, NamedTensor>();
  for (const [name] of baseParamShapes(config)) {
    const t = store.get(name)!;
    out.set(name, isLinear(name) ? transpose2d(t) : t);
  }
  saveSafetensors(join(dir, 'model.safetensors'), out, { format: 'pt' });
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(toHfConfig(config), null, 2));
}

/** LoRA adapters in PEFT layout: adapter_config.json + adapter_model.safetensors. */
export function exportPeftAdapter(dir: string, config: ModelConfig, store: ParamStore, peft: PeftConfig): void {
  if (peft.method !== 'lora') throw new UserError('only LoRA adapters can be exported in PEFT layout');
  const modules: Record<string, string> = { q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj', gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
  const out = new Map<string, NamedTensor>();
  for (const [name, t] of store) {
    const m = /^(.*)\.lora_([AB])$/.exec(name);
    if (!m) continue;
    // PEFT stores lora_A as [r, in] and lora_B as [out, r] (nn.Linear layout).
    out.set(`base_model.model.${m[1]}.lora_${m[2]}.weight`, transpose2d(t));
  }
  mkdirSync(dir, { recursive: true });
  saveSafetensors(join(dir, 'adapter_model.safetensors'), out, { format: 'pt' });
  writeFileAtomic(join(dir, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: peft.lora.rank, lora_alpha: peft.lora.alpha, lora_dropout: peft.lora.dropout,
    target_modules: peft.lora.targets.map((t) => modules[t]), bias: 'none', base_model_name_or_path: config.model_type,
  }, null, 2));
}
