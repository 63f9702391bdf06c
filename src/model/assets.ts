import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The files beside the weights that a model needs to be used: its tokenizer and generation
 * defaults. Checkpoints and exports carry them, so a model fine-tuned from a Hugging Face folder is
 * evaluated, decoded and exported with its own tokenizer, not the byte-level one.
 */
export const MODEL_ASSET_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
];

/** Copy the asset files `from` has into `to` (nothing for a preset model, which has none). */
export function copyModelAssets(from: string | null | undefined, to: string): string[] {
  if (!from) return [];
  const copied = MODEL_ASSET_FILES.filter((f) => existsSync(join(from, f)));
  for (const f of copied) copyFileSync(join(from, f), join(to, f));
  return copied;
}
