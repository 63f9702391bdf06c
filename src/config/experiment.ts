import type { ExperimentConfig } from './schema.js';
import { PRESETS, validateModelConfig, type ModelConfig } from '../model/config.js';
import { addPeftParams, initParams, type ParamStore, type PeftConfig } from '../model/params.js';
import { importHfFolder } from '../model/hf.js';
import { quantBitsOf, quantizeFrozen } from '../model/frozen-dtype.js';
import type { FrozenQuant } from '../model/quantize.js';
import { validateSplit } from '../model/partition.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { checkExamplesForTask, readSilo, type Example } from '../data/examples.js';
import { prepareExamples, type PreparedData } from '../data/prepare.js';
import { UserError } from '../util/errors.js';
import { HfTokenizer, tokenizerForFolder } from '../data/hf-tokenizer.js';
import { ChatTemplateTokenizer } from '../data/chat-template.js';

/** Turn an experiment config into the concrete model, PEFT setup and data it describes. */
export function peftOf(cfg: ExperimentConfig): PeftConfig {
  return { method: cfg.finetune.method, lora: cfg.finetune.lora, prefix: cfg.finetune.prefix };
}

/** The quantization of the frozen base a config asks for (checkpoints record it, see checkpoint.ts). */
export function quantizedBaseOf(cfg: ExperimentConfig): FrozenQuant | undefined {
  const dtype = cfg.model.frozen_dtype;
  return dtype === 'int8' || dtype === 'int4' ? { dtype, compute: cfg.model.quant_compute } : undefined;
}

/** Which weights a process needs, given the model's config (default: all of them). */
export type WeightSelection = (config: ModelConfig) => (name: string) => boolean;

/**
 * The model a config describes. `select` keeps only some weights (the server's trunk, a client's
 * head and tail): an HF folder's other tensors are never read, and memory holds only the part.
 */
export function resolveModel(
  cfg: ExperimentConfig,
  select?: WeightSelection,
): { config: ModelConfig; store: ParamStore; tokenizer: Tokenizer } {
  let config: ModelConfig, store: ParamStore;
  if (cfg.model.hf_path)
    ({ config, store } = importHfFolder(cfg.model.hf_path, select, {
      frozen: { method: cfg.finetune.method, dtype: cfg.model.frozen_dtype, compute: cfg.model.quant_compute },
    }));
  else {
    config = {
      ...PRESETS[cfg.model.preset],
      max_position_embeddings: Math.max(PRESETS[cfg.model.preset].max_position_embeddings, cfg.model.max_seq_len),
    };
    store = initParams(config, cfg.seed);
    const bits = quantBitsOf(cfg.model.frozen_dtype);
    if (bits) quantizeFrozen(store, cfg.finetune.method, bits, cfg.model.quant_compute);
  }
  validateModelConfig(config);
  validateSplit(config, cfg.split);
  const tokenizer = withChatTemplate(tokenizerForFolder(cfg.model.hf_path), cfg.data.chat_template, cfg.model.hf_path);
  if (config.vocab_size < tokenizer.vocabSize)
    throw new UserError(`model vocab_size ${config.vocab_size} is smaller than the tokenizer's ${tokenizer.vocabSize}`);
  if (cfg.data.seq_len > config.max_position_embeddings)
    throw new UserError(
      `data.seq_len ${cfg.data.seq_len} exceeds the model's max_position_embeddings ${config.max_position_embeddings}`,
    );
  addPeftParams(store, config, peftOf(cfg), cfg.seed);
  if (select) {
    const keep = select(config);
    for (const name of [...store.keys()]) if (!keep(name)) store.delete(name);
  }
  return { config, store, tokenizer };
}

/** With `data.chat_template`, the model's tokenizer formats prompt/completion examples with its template. */
export function withChatTemplate(tokenizer: Tokenizer, enabled: boolean, from: string | null): Tokenizer {
  if (!enabled) return tokenizer;
  if (!(tokenizer instanceof HfTokenizer) || !tokenizer.chatTemplate)
    throw new UserError(
      `data.chat_template: true, but ${from ? `${from}/tokenizer_config.json has no chat_template` : 'a preset model has no tokenizer (and no chat template)'}. Fix: set data.chat_template: false, or use a model folder whose tokenizer_config.json has one`,
    );
  return new ChatTemplateTokenizer(tokenizer, tokenizer.chatTemplate, tokenizer.specialTokens);
}

export interface ExperimentData {
  silos: Example[][];
  test: Example[];
}

export function resolveData(cfg: ExperimentConfig): ExperimentData {
  if (cfg.data.silos) {
    const silos = cfg.data.silos.map((dir) => readSilo(dir));
    if (!cfg.data.test) throw new UserError('data.test: give a held-out folder for evaluation when data.silos is set');
    const test = readSilo(cfg.data.test);
    for (const s of [...silos, test]) checkExamplesForTask(s, cfg.data.task);
    return { silos, test };
  }
  const prepared = prepareFromConfig(cfg);
  return { silos: prepared.silos, test: prepared.test };
}

/**
 * The silos and test split a config describes when it names a dataset. `flglm run` writes these
 * to disk for its clients and the centralized baseline rebuilds them here, so both see the same data.
 */
export function prepareFromConfig(cfg: ExperimentConfig): PreparedData {
  return prepareExamples({
    dataset: cfg.data.dataset,
    task: cfg.data.task,
    clients: cfg.federation.clients,
    partition: cfg.data.partition,
    testFraction: cfg.data.test_fraction,
    seed: cfg.seed,
    maxExamples: cfg.data.max_examples,
  });
}

/** Every client evaluates after every `eval.every_rounds` rounds and after the last. */
export function evaluatesAfter(cfg: ExperimentConfig, round: number): boolean {
  return round === cfg.federation.rounds || round % cfg.eval.every_rounds === 0;
}

/** Server and clients checkpoint every `federation.checkpoint_every_rounds` rounds and after the last. */
export function checkpointsAfter(cfg: ExperimentConfig, round: number): boolean {
  return round === cfg.federation.rounds || round % cfg.federation.checkpoint_every_rounds === 0;
}
