import { UserError } from '../util/errors.js';
import type { HfConfigTable, OptionalKey } from './families/family.js';

/**
 * Keys of a config.json that no family's computation depends on: what produced the file, token ids
 * (the tokenizer's business), generation defaults, training-time bookkeeping.
 */
const METADATA = new Set([
  'architectures',
  'model_type',
  'transformers_version',
  '_name_or_path',
  'name_or_path',
  'auto_map',
  'torch_dtype',
  'dtype',
  'use_cache',
  'cache_implementation',
  'initializer_range',
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  'tokenizer_class',
  'return_dict',
  'output_hidden_states',
  'output_attentions',
  'torchscript',
  'id2label',
  'label2id',
  'problem_type',
  'task_specific_params',
  'chunk_size_feed_forward',
  'is_encoder_decoder',
]);

/** Keys whose reason for refusal is known, named in the error. */
const KNOWN_UNSUPPORTED: Record<string, string> = {
  quantization_config: 'quantized checkpoints are not supported; use the unquantized weights',
};

/**
 * The keys of one config.json, each read through here: reading marks it, `rest` lists whatever no
 * rule read, and those are refused by name (a key flglm does not know might change the math).
 * A key config.json leaves out reads as transformers' default for the family.
 */
export class ConfigKeys {
  private readonly read = new Set<string>();

  constructor(
    private readonly hf: Record<string, unknown>,
    private readonly table: HfConfigTable,
    readonly type: string,
  ) {}

  /** Whether config.json has the key (null counts: it is there). */
  has(key: string): boolean {
    return key in this.hf;
  }

  /** Whether the family reads an optional key. */
  reads(key: OptionalKey): boolean {
    return this.table.reads.includes(key);
  }

  /** The value (or the family's default), marking the key read. */
  get(key: string): unknown {
    this.read.add(key);
    return key in this.hf ? this.hf[key] : this.table.defaults[key];
  }

  num(key: string, fallback?: number): number {
    const v = this.get(key) ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new UserError(`config.json: "${key}" must be a number (got ${JSON.stringify(v) ?? 'nothing'})`);
    return v;
  }

  /** A number, or undefined where the key is absent or null. */
  optionalNum(key: string): number | undefined {
    const v = this.get(key);
    return v === null || v === undefined ? undefined : this.num(key);
  }

  bool(key: string, fallback = false): boolean {
    const v = this.get(key) ?? fallback;
    if (typeof v !== 'boolean')
      throw new UserError(`config.json: "${key}" must be true or false (got ${JSON.stringify(v)})`);
    return v;
  }

  /** Refuse a key whose value is one flglm does not implement. */
  refuse(key: string, why: string): never {
    throw new UserError(
      `config.json: ${key} ${JSON.stringify(this.hf[key]).slice(0, 80)} is not supported for model_type ${this.type} (${why})`,
    );
  }

  /** After every rule has read: refuse what no rule read, by name. */
  finish(): void {
    for (const [key, { allowed, why }] of Object.entries(this.table.requires ?? {}))
      if (this.has(key) && !allowed.includes(this.get(key))) this.refuse(key, why);
    for (const key of this.table.ignores ?? []) this.read.add(key);
    const left = Object.keys(this.hf).filter((k) => !this.read.has(k) && !METADATA.has(k));
    if (left.length === 0) return;
    const key = left[0];
    if (KNOWN_UNSUPPORTED[key]) this.refuse(key, KNOWN_UNSUPPORTED[key]);
    throw new UserError(
      `config.json: "${key}"${left.length > 1 ? ` (and ${left.slice(1).join(', ')})` : ''} is not something flglm's ${this.type} family reads; it may change the model's computation, so the model is refused rather than run without it (if it does not, remove the key)`,
    );
  }
}
