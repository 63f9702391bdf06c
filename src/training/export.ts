import { exportHfFolder } from '../model/hf.js';
import { mergeLora } from '../model/lora.js';
import type { StorageDtype } from '../model/safetensors.js';
import { prepareOutputDir } from '../util/output-dir.js';
import { UserError } from '../util/errors.js';
import type { ModelFolder } from './model-folder.js';

/** The whole model as a Hugging Face folder: refuses to drop adapters silently. */
export function exportHf(
  m: ModelFolder,
  out: string,
  o: { mergeLora?: boolean; dtype?: StorageDtype; maxShardBytes?: number },
): string {
  if (m.peft.method === 'prefix')
    throw new UserError(
      'this model was prefix-tuned: a Hugging Face model folder cannot hold prefix keys/values. Fix: export --onnx (which keeps them), or fine-tune with full or lora',
    );
  if (m.peft.method === 'lora' && !o.mergeLora)
    throw new UserError(
      'this model was trained with LoRA: a plain Hugging Face folder would drop the adapters. Fix: add --merge-lora (fold them into the weights), or use --peft OUT for the adapter alone',
    );
  const store = m.peft.method === 'lora' ? mergeLora(m.store, m.config, m.peft) : m.store;
  prepareOutputDir(out, '--hf');
  exportHfFolder(out, m.config, store, {
    dtype: o.dtype,
    maxShardBytes: o.maxShardBytes,
    assetsFrom: m.dir,
    specialTokens: m.tokenizer,
  });
  return m.peft.method === 'lora' ? 'LoRA merged into the weights' : 'weights as trained';
}
