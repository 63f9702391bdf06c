import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../../data/tokenizer.js';
import { UserError } from '../../util/errors.js';
import type { ChatMessage } from './requests.js';

/**
 * A conversation as the prompt text the model continues: the model's own chat template
 * (tokenizer_config.json's `chat_template`, rendered as transformers renders it, with the
 * generation prompt), or, for a tokenizer without one (the byte-level presets), the plain
 * template below, which also stops the answer where the model starts the next user turn.
 */
export interface ChatFormat {
  render(messages: ChatMessage[]): string;
  /** Stop sequences the format implies (added to the request's own). */
  stop: string[];
  /** 'template' (the model's) or 'plain'. */
  kind: 'template' | 'plain';
}

const TITLE: Record<string, string> = {
  system: 'System',
  developer: 'System',
  user: 'User',
  assistant: 'Assistant',
  tool: 'Tool',
};

/** `System: ...\nUser: ...\nAssistant: ...\n` for each message, then `Assistant:`. */
export const PLAIN_CHAT: ChatFormat = {
  kind: 'plain',
  render: (messages) => messages.map((m) => `${TITLE[m.role]}: ${m.content}\n`).join('') + 'Assistant:',
  stop: ['\nUser:'],
};

export function chatFormat(tokenizer: Tokenizer): ChatFormat {
  const t = tokenizer as Tokenizer & {
    chatTemplate?: string | null;
    specialTokens?: { bos_token?: string; eos_token?: string };
  };
  if (!t.chatTemplate) return PLAIN_CHAT;
  let template: Template;
  try {
    template = new Template(t.chatTemplate);
  } catch (e) {
    throw new UserError(`tokenizer_config.json: chat_template does not parse (${(e as Error).message})`);
  }
  return {
    kind: 'template',
    stop: [],
    render: (messages) =>
      template.render({
        messages,
        add_generation_prompt: true,
        bos_token: t.specialTokens?.bos_token ?? '',
        eos_token: t.specialTokens?.eos_token ?? '',
      }),
  };
}
