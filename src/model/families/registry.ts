import { UserError } from '../../util/errors.js';
import type { ModelFamily } from './family.js';
import { gemma2Family } from './gemma2.js';
import { gemma3Family } from './gemma3.js';
import { llamaFamily } from './llama.js';
import { mistralFamily } from './mistral.js';
import { phi3Family } from './phi3.js';
import { qwen2Family } from './qwen2.js';
import { qwen3Family } from './qwen3.js';

const FAMILIES: ModelFamily[] = [
  llamaFamily,
  qwen2Family,
  qwen3Family,
  mistralFamily,
  gemma2Family,
  gemma3Family,
  phi3Family,
];

/** The family of a `model_type`; an unknown type is one error naming the supported ones. */
export function familyOf(modelType: string): ModelFamily {
  const f = FAMILIES.find((x) => x.modelTypes.includes(modelType));
  if (!f)
    throw new UserError(
      `model_type "${modelType}" is not supported (supported: ${supportedModelTypes().join(', ')}); a new family is one file in src/model/families`,
    );
  return f;
}

export function supportedModelTypes(): string[] {
  return FAMILIES.flatMap((f) => f.modelTypes);
}

/** Add a family at run time (an extension, or a test); its model types must be new. */
export function registerModelFamily(f: ModelFamily): void {
  const taken = f.modelTypes.filter((t) => supportedModelTypes().includes(t));
  if (taken.length) throw new Error(`model_type ${taken.join(', ')} already has a family`);
  FAMILIES.push(f);
}
