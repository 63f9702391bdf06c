import { badRequest } from './api-errors.js';

/**
 * The request bodies of POST /v1/completions and /v1/chat/completions, checked: anything the
 * endpoint cannot honour is a 400 naming the field (`param`) and what it takes, never a guess.
 * Fields the endpoint does not know are ignored, as the OpenAI API ignores them for older models.
 */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface SamplingRequest {
  /** null: the endpoint's default. */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  /** null: a fresh seed per request. */
  seed: number | null;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionRequest extends SamplingRequest {
  model: string | null;
  /** Text (the tokenizer's BOS is put before it), or token ids as given. */
  prompt: string | number[];
}

export interface ChatRequest extends SamplingRequest {
  model: string | null;
  messages: ChatMessage[];
}

type Body = Record<string, unknown>;

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

function optional<T>(b: Body, key: string, check: (v: unknown) => v is T, takes: string): T | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw badRequest(`${key}: expected ${takes}, got ${JSON.stringify(v)?.slice(0, 60)}`, key);
  return v;
}

const isInt =
  (lo: number, hi: number) =>
  (v: unknown): v is number =>
    typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const isNumber =
  (lo: number, hi: number) =>
  (v: unknown): v is number =>
    typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isString = (v: unknown): v is string => typeof v === 'string';
const isStop = (v: unknown): v is string | string[] =>
  (typeof v === 'string' && v.length > 0) ||
  (Array.isArray(v) && v.length <= 4 && v.every((s) => typeof s === 'string' && s.length > 0));
const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Options that would change the answer in ways this endpoint does not implement: refused unless at their default. */
const UNSUPPORTED: [key: string, isDefault: (v: unknown) => boolean][] = [
  ['logprobs', (v) => v === false],
  ['top_logprobs', (v) => v === 0],
  ['echo', (v) => v === false],
  ['best_of', (v) => v === 1],
  ['suffix', (v) => v === ''],
  ['frequency_penalty', (v) => v === 0],
  ['presence_penalty', (v) => v === 0],
  ['logit_bias', (v) => isObject(v) && Object.keys(v).length === 0],
  ['tools', (v) => Array.isArray(v) && v.length === 0],
  ['functions', (v) => Array.isArray(v) && v.length === 0],
  ['response_format', (v) => isObject(v) && v.type === 'text'],
];

function sampling(b: Body, maxKey: string[]): SamplingRequest {
  const n = optional(b, 'n', isInt(1, 1), 'n = 1 (this endpoint makes one choice per request)');
  void n;
  for (const [key, isDefault] of UNSUPPORTED)
    if (b[key] !== undefined && b[key] !== null && !isDefault(b[key]))
      throw badRequest(`${key} is not supported by this endpoint; leave it out`, key, 'unsupported_parameter');
  let maxTokens: number | null = null;
  for (const key of maxKey) maxTokens ??= optional(b, key, isInt(1, 2 ** 31), 'an integer >= 1') ?? null;
  const stop = optional(b, 'stop', isStop, 'a non-empty string or up to 4 of them');
  const options = optional(b, 'stream_options', isObject, 'an object');
  return {
    maxTokens,
    temperature: optional(b, 'temperature', isNumber(0, 2), 'a number in [0, 2]') ?? 1,
    topP: optional(b, 'top_p', isNumber(Number.MIN_VALUE, 1), 'a number in (0, 1]') ?? 1,
    seed: optional(b, 'seed', isInt(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), 'an integer') ?? null,
    stop: stop === undefined ? [] : typeof stop === 'string' ? [stop] : stop,
    stream: optional(b, 'stream', isBool, 'true or false') ?? false,
    includeUsage: (options && optional(options, 'include_usage', isBool, 'true or false')) ?? false,
  };
}

function body(v: unknown): Body {
  if (!isObject(v)) throw badRequest('the request body must be a JSON object');
  return v;
}

const isIds = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && (x as number) >= 0);

export function parseCompletionRequest(json: unknown): CompletionRequest {
  const b = body(json);
  let p = b.prompt;
  // One prompt per request: a list of one is that prompt.
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || isIds(p[0]))) p = p[0];
  if (!(typeof p === 'string' && p.length > 0) && !isIds(p))
    throw badRequest(
      'prompt: expected one non-empty string (or one list of token ids); for several prompts send several requests',
      'prompt',
    );
  return {
    model: optional(b, 'model', isString, 'a string') ?? null,
    prompt: p,
    ...sampling(b, ['max_tokens']),
  };
}

function message(m: unknown, i: number): ChatMessage {
  const where = `messages[${i}]`;
  if (!isObject(m) || typeof m.role !== 'string' || !ROLES.has(m.role))
    throw badRequest(`${where}: expected {role: system|developer|user|assistant|tool, content}`, where);
  const c = m.content;
  if (typeof c === 'string') return { role: m.role, content: c };
  // Content parts: text only (this model reads no images or audio).
  if (Array.isArray(c) && c.every((part) => isObject(part) && part.type === 'text' && typeof part.text === 'string'))
    return { role: m.role, content: c.map((part) => (part as { text: string }).text).join('') };
  if ((c === null || c === undefined) && m.role === 'assistant') return { role: m.role, content: '' };
  throw badRequest(`${where}.content: expected a string or a list of {type: "text", text} parts`, `${where}.content`);
}

export function parseChatRequest(json: unknown): ChatRequest {
  const b = body(json);
  if (!Array.isArray(b.messages) || b.messages.length === 0)
    throw badRequest('messages: expected a non-empty list of {role, content}', 'messages');
  return {
    model: optional(b, 'model', isString, 'a string') ?? null,
    messages: b.messages.map(message),
    ...sampling(b, ['max_completion_tokens', 'max_tokens']),
  };
}
