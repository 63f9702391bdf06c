import { Template } from '@huggingface/jinja';
import { UserError } from '../util/errors.js';
import type { Tokenizer } from './tokenizer.js';

/**
 * A tokenizer that formats prompt/completion examples with the model's chat template
 * (`chat_template` in tokenizer_config.json, rendered by @huggingface/jinja as transformers does):
 * the prompt becomes the user turn plus the assistant header, the completion the assistant's turn
 * as the template closes it (e.g. `...<|im_end|>`). Loss stays on the completion only.
 */
export class ChatTemplateTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly pad: number;
  private readonly template: Template;

  constructor(
    private readonly base: Tokenizer,
    source: string,
    private readonly special: { bos_token?: string; eos_token?: string } = {},
  ) {
    ({ vocabSize: this.vocabSize, bos: this.bos, eos: this.eos, pad: this.pad } = base);
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new UserError(`tokenizer_config.json: chat_template does not parse (${(e as Error).message})`);
    }
  }

  encode(text: string): number[] {
    return this.base.encode(text);
  }
  decode(ids: number[]): string {
    return this.base.decode(ids);
  }

  formatExample(e: { prompt: string; completion: string }): { prompt: string; completion: string } {
    const user = { role: 'user', content: e.prompt };
    const prompt = this.render([user], true);
    const whole = this.render([user, { role: 'assistant', content: e.completion }], false);
    // The assistant turn is what the whole conversation adds to the prompt; a template that renders
    // the prompt differently inside the whole falls back to the plain completion.
    return { prompt, completion: whole.startsWith(prompt) ? whole.slice(prompt.length) : e.completion };
  }

  private render(messages: { role: string; content: string }[], addGenerationPrompt: boolean): string {
    return this.template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.special.bos_token ?? '',
      eos_token: this.special.eos_token ?? '',
    });
  }
}
