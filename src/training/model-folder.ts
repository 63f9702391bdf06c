import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from './checkpoint.js';
import { importHfFolder } from '../model/hf.js';
import { baseParamShapes, type ParamStore, type PeftConfig } from '../model/params.js';
import type { ModelConfig } from '../model/config.js';
import { tokenizerForFolder } from '../data/hf-tokenizer.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { UserError } from '../util/errors.js';

export interface ModelFolder {
  config: ModelConfig;
  store: ParamStore;
  peft: PeftConfig;
  tokenizer: Tokenizer;
  /** Where the tokenizer and generation files are (the folder itself). */
  dir: string;
  baseModel?: string;
}

const NO_PEFT: PeftConfig = {
  method: 'full',
  lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q'] },
  prefix: { length: 1 },
};

/**
 * A flglm checkpoint (checkpoint.json) or a Hugging Face folder (config.json + safetensors), with
 * its own tokenizer. A checkpoint that holds only part of the model (a client's head and tail, or
 * the server's trunk) is refused, naming `flglm merge` (unless `partial`: split generation runs a
 * client's head and tail).
 */
export function loadModelFolder(dir: string, o: { partial?: boolean } = {}): ModelFolder {
  if (existsSync(join(dir, 'checkpoint.json'))) {
    const { store, meta } = loadCheckpoint(dir);
    const missing = baseParamShapes(meta.model)
      .filter(([n]) => !store.has(n))
      .map(([n]) => n);
    if (missing.length && !o.partial) {
      const part = store.has('model.embed_tokens.weight') ? "a client's head and tail" : "the server's trunk";
      throw new UserError(
        `${dir} holds only part of the model (${part}; ${missing.length} weights missing, e.g. ${missing[0]}). Fix: flglm merge --server <server checkpoint> --client <client checkpoint> --out <dir>, then use that folder`,
      );
    }
    return {
      config: meta.model,
      store,
      peft: meta.peft,
      tokenizer: tokenizerForFolder(dir),
      dir,
      baseModel: meta.base_model,
    };
  }
  if (existsSync(join(dir, 'config.json'))) {
    const { config, store } = importHfFolder(dir);
    return { config, store, peft: NO_PEFT, tokenizer: tokenizerForFolder(dir), dir };
  }
  throw new UserError(
    `${dir} is neither a flglm checkpoint (checkpoint.json) nor a Hugging Face model folder (config.json)`,
  );
}
