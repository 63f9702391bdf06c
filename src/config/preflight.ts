import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { totalmem } from 'node:os';
import type { ExperimentConfig } from './schema.js';
import { PRESETS, headDim, validateModelConfig, type ModelConfig } from '../model/config.js';
import { fromHfConfig } from '../model/hf-config.js';
import { validateSplit } from '../model/partition.js';
import { checkExamplesForTask, readSilo } from '../data/examples.js';
import { UserError } from '../util/errors.js';
import { tokenizerForFolder } from '../data/hf-tokenizer.js';
import { withChatTemplate } from './experiment.js';
import { federatedProblems } from './run-rules.js';

/** The model a config describes, from config.json alone (no weights read). */
export function modelConfigOf(cfg: ExperimentConfig): ModelConfig {
  if (!cfg.model.hf_path)
    return {
      ...PRESETS[cfg.model.preset],
      max_position_embeddings: Math.max(PRESETS[cfg.model.preset].max_position_embeddings, cfg.model.max_seq_len),
    };
  const path = join(cfg.model.hf_path, 'config.json');
  if (!existsSync(path))
    throw new UserError(`model.hf_path ${cfg.model.hf_path}: no config.json; expected a Hugging Face model folder`);
  try {
    return fromHfConfig(JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`model.hf_path ${cfg.model.hf_path}: ${e.message}`);
    throw new UserError(`${path}: not JSON (${(e as Error).message})`);
  }
}

/**
 * Bytes one training step of the biggest part holds at its peak, roughly: the attention scores
 * and their softmax and gradient (B x H x S x S floats, three of them, per block held for the
 * backward), and the logits with their softmax gradient (B x S x V, two). An estimate to refuse
 * what cannot fit, not a measurement.
 */
export function stepMemoryEstimate(c: ModelConfig, batch: number, seq: number, prefix = 0): number {
  const attention = 3 * batch * c.num_attention_heads * seq * (seq + prefix) * 4;
  const hidden =
    12 * batch * seq * Math.max(c.hidden_size, c.num_attention_heads * headDim(c), c.intermediate_size) * 4;
  const logits = 2 * batch * seq * c.vocab_size * 4;
  return c.num_hidden_layers * (attention + hidden) + logits;
}

/**
 * Everything checkable before any work starts, each as one clear error: the model (config.json,
 * split, positions), the memory one step needs, and the data folders (they exist, parse, and fit
 * the task). Run by `flglm config validate`, and at the start of `run`, `server` and `train`;
 * `federated`: the run is federated (`run`, `server`), which refuses what only `train` honours.
 */
export function preflight(cfg: ExperimentConfig, o: { data?: boolean; federated?: boolean } = {}): string[] {
  const notes: string[] = [];
  const federated = federatedProblems(cfg);
  if (o.federated && federated.length) throw new UserError(federated[0]);
  if (o.federated === undefined) notes.push(...federated.map((p) => `for flglm train only: ${p}`));
  const model = modelConfigOf(cfg);
  validateModelConfig(model);
  validateSplit(model, cfg.split);
  if (cfg.data.seq_len > model.max_position_embeddings)
    throw new UserError(
      `data.seq_len ${cfg.data.seq_len} exceeds the model's max_position_embeddings ${model.max_position_embeddings}. Fix: lower data.seq_len${cfg.model.hf_path ? '' : ' or raise model.max_seq_len'}`,
    );
  // A chat template needs a model tokenizer that has one (the same check the processes make).
  if (cfg.data.chat_template) withChatTemplate(tokenizerForFolder(cfg.model.hf_path), true, cfg.model.hf_path);
  const prefix = cfg.finetune.method === 'prefix' ? cfg.finetune.prefix.length : 0;
  const need = stepMemoryEstimate(model, cfg.data.batch_size, cfg.data.seq_len, prefix);
  const have = totalmem();
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (need > 0.8 * have) {
    throw new UserError(
      `one training step needs about ${gib(need)} (batch_size ${cfg.data.batch_size} x seq_len ${cfg.data.seq_len}: attention grows with seq_len squared) and this machine has ${gib(have)}. Fix: lower data.seq_len or data.batch_size`,
    );
  }
  notes.push(
    `model: ${model.model_type}, ${model.num_hidden_layers} layers (head ${cfg.split.head_blocks}, tail ${cfg.split.tail_blocks}); one step needs about ${gib(need)} of ${gib(have)}`,
  );
  if (o.data !== false && cfg.data.silos) {
    if (cfg.data.silos.length !== cfg.federation.clients)
      throw new UserError(
        `data.silos lists ${cfg.data.silos.length} folders but federation.clients is ${cfg.federation.clients}`,
      );
    if (!cfg.data.test) throw new UserError('data.test: give a held-out folder for evaluation when data.silos is set');
    for (const dir of [...cfg.data.silos, cfg.data.test]) {
      const examples = readSilo(dir);
      checkExamplesForTask(examples, cfg.data.task);
      notes.push(`data: ${dir}: ${examples.length} examples`);
    }
  }
  return notes;
}
