import type { ModelConfig } from './config.js';
import {
  LINEAR_NAMES,
  float32Copy,
  float32Of,
  layerPrefix,
  type Param,
  type ParamStore,
  type PeftConfig,
} from './weights.js';

/**
 * The model with every LoRA delta folded into its base weight — W' = W + (alpha / r) A B in
 * flglm's [in, out] layout, exactly what the forward adds — and the adapters removed: a plain
 * model that scores what the LoRA model scores (dropout aside, which is off at inference).
 */
export function mergeLora(store: ParamStore, config: ModelConfig, peft: PeftConfig): Map<string, Param> {
  const out: Map<string, Param> = new Map(
    [...store]
      .filter(([n]) => !n.includes('.lora_'))
      .map(([n, p]) => [n, { shape: [...p.shape], data: float32Copy(p) }]),
  );
  if (peft.method !== 'lora') return out;
  const scale = peft.lora.alpha / peft.lora.rank;
  for (let l = 0; l < config.num_hidden_layers; l++) {
    for (const target of peft.lora.targets) {
      const name = `${layerPrefix(l)}.${LINEAR_NAMES[target]}`;
      const a = store.get(`${name}.lora_A`),
        b = store.get(`${name}.lora_B`),
        w = out.get(`${name}.weight`);
      if (!a || !b || !w) throw new Error(`cannot merge LoRA into ${name}: missing ${!w ? 'base weight' : 'adapter'}`);
      const [rows, r] = a.shape,
        cols = b.shape[1];
      const [ad, bd] = [float32Of(a), float32Of(b)];
      for (let i = 0; i < rows; i++) {
        for (let k = 0; k < r; k++) {
          const aik = ad[i * r + k] * scale;
          if (aik === 0) continue;
          const row = i * cols,
            brow = k * cols;
          for (let j = 0; j < cols; j++) w.data[row + j] += aik * bd[brow + j];
        }
      }
    }
  }
  return out;
}
