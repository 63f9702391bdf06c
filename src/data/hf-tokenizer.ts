import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfJsTokenizer } from '@huggingface/tokenizers';
import { UserError } from '../util/errors.js';
import { ByteTokenizer, type Tokenizer } from './tokenizer.js';

interface TokenizerJson {
  model?: { vocab?: Record<string, number> | [string, number][] };
  added_tokens?: { id: number; content: string }[];
}

/** A Hugging Face `tokenizer.json` (BPE, Unigram, WordPiece...) through tokenizers.js (pure JS). */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly pad: number;
  private readonly impl: HfJsTokenizer;
  /** tokenizer_config.json's `chat_template` (the default one when it lists several), if any. */
  readonly chatTemplate: string | null;
  /** The special tokens' text, as chat templates refer to them. */
  readonly specialTokens: { bos_token?: string; eos_token?: string };

  constructor(json: TokenizerJson, config: Record<string, unknown> = {}) {
    this.impl = new HfJsTokenizer(json, config);
    const ids = new Map<string, number>();
    const vocab = json.model?.vocab;
    if (Array.isArray(vocab)) vocab.forEach(([tok], i) => ids.set(tok, i));
    else if (vocab) for (const [tok, id] of Object.entries(vocab)) ids.set(tok, id);
    for (const t of json.added_tokens ?? []) ids.set(t.content, t.id);
    // A loop, not Math.max(...ids): real vocabularies (150k entries) overflow the call stack as arguments.
    let top = -1;
    for (const id of ids.values()) if (id > top) top = id;
    this.vocabSize = top + 1;
    const tokenOf = (key: string): string | undefined => {
      const v = config[key];
      return typeof v === 'string' ? v : (v as { content?: string } | undefined)?.content;
    };
    const find = (key: string, fallbacks: string[]): number | undefined => {
      for (const t of [tokenOf(key), ...fallbacks]) if (t !== undefined && ids.has(t)) return ids.get(t);
      return undefined;
    };
    const eos = find('eos_token', ['</s>', '<|endoftext|>', '<|im_end|>', '<eos>']);
    if (eos === undefined)
      throw new UserError('tokenizer.json: no end-of-sequence token found (set eos_token in tokenizer_config.json)');
    this.eos = eos;
    this.bos = find('bos_token', ['<s>', '<|begin_of_text|>', '<bos>']) ?? eos;
    this.pad = find('pad_token', ['<pad>', '<|pad|>']) ?? eos;
    const t = config.chat_template;
    this.chatTemplate =
      typeof t === 'string'
        ? t
        : Array.isArray(t)
          ? ((t as { name: string; template: string }[]).find((x) => x.name === 'default')?.template ?? null)
          : null;
    this.specialTokens = { bos_token: tokenOf('bos_token'), eos_token: tokenOf('eos_token') };
  }

  static fromFolder(dir: string): HfTokenizer {
    const path = join(dir, 'tokenizer.json');
    if (!existsSync(path)) throw new UserError(`${dir}: no tokenizer.json`);
    const cfgPath = join(dir, 'tokenizer_config.json');
    return new HfTokenizer(
      JSON.parse(readFileSync(path, 'utf8')),
      existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, 'utf8')) : {},
    );
  }

  encode(text: string): number[] {
    return this.impl.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[]): string {
    return this.impl.decode(ids, { skip_special_tokens: true });
  }
}

/** The tokenizer of a model folder: its `tokenizer.json` when it has one, else the byte tokenizer. */
export function tokenizerForFolder(dir: string | null): Tokenizer {
  return dir && existsSync(join(dir, 'tokenizer.json')) ? HfTokenizer.fromFolder(dir) : new ByteTokenizer();
}
