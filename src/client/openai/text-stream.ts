import type { Tokenizer } from '../../data/tokenizer.js';

/**
 * New token ids in, new text out, for streaming: text is released only once it can no longer
 * change — not while it ends in an incomplete character, nor while its end could be the start of
 * a stop sequence. A stop sequence anywhere in the text ends the answer there (it is not part of
 * it), whichever tokens it spans.
 */
export class TextStream {
  private readonly ids: number[] = [];
  private released = 0;
  private text = '';
  stopped = false;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly stops: readonly string[],
  ) {}

  /** Tokens taken so far. */
  get tokens(): number {
    return this.ids.length;
  }

  /** The answer so far (up to a stop sequence, if one came). */
  get answer(): string {
    return this.text;
  }

  /** Take one new id; returns the text that is now certain ('' if none). */
  push(id: number): string {
    if (this.stopped) return '';
    this.ids.push(id);
    let text = this.tokenizer.decode(this.ids);
    let hold = 0;
    let cut = -1;
    for (const s of this.stops) {
      const at = text.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      text = text.slice(0, cut);
      this.stopped = true;
    } else {
      while (hold < text.length && text[text.length - 1 - hold] === '\uFFFD') hold++;
      for (const s of this.stops)
        for (let k = Math.min(s.length - 1, text.length); k > hold; k--)
          if (text.endsWith(s.slice(0, k))) {
            hold = k;
            break;
          }
    }
    this.text = text;
    return this.release(text.length - hold);
  }

  /** The rest, at the end of generation. */
  flush(): string {
    return this.release(this.text.length);
  }

  private release(upTo: number): string {
    if (upTo <= this.released) return '';
    const out = this.text.slice(this.released, upTo);
    this.released = upTo;
    return out;
  }
}
