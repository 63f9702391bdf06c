/** Text <-> token ids, with the special ids batching needs. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly pad: number;
  encode(text: string): number[];
  decode(ids: number[]): string;
  /** Rewrites a prompt/completion example before encoding (a chat template), if the tokenizer has one. */
  formatExample?(e: { prompt: string; completion: string }): { prompt: string; completion: string };
}

/** Byte-level tokenizer: UTF-8 bytes are ids 0..255, then BOS, EOS and PAD. */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 259;
  readonly bos = 256;
  readonly eos = 257;
  readonly pad = 258;
  encode(text: string): number[] {
    return Array.from(Buffer.from(text, 'utf8'));
  }
  decode(ids: number[]): string {
    return Buffer.from(ids.filter((i) => i < 256)).toString('utf8');
  }
}
