import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { badRequest } from './api-errors.js';
import type { ChatFormat } from './chat-prompt.js';
import type { Engine, EngineRequest, EngineResult } from './engine.js';
import { parseChatRequest, parseCompletionRequest, type SamplingRequest } from './requests.js';

/**
 * POST /v1/completions and /v1/chat/completions: the checked request to token ids and limits, the
 * engine's answer as one JSON body or as server-sent events (`data: {chunk}` per piece of text, a
 * last chunk with the finish reason, the usage chunk if asked, `data: [DONE]`). A stream's headers
 * go out with its first text, so a refusal before it (trunk busy, unreachable) is still an HTTP
 * error status; one after it is an `error` event, which the OpenAI SDKs raise.
 */
export interface GenerationContext {
  engine: Engine;
  modelId: string;
  chat: ChatFormat;
  /** Longest prompt taken, in tokens. */
  maxPromptTokens: number;
}

export type Kind = 'completion' | 'chat';

export type PreparedRequest = EngineRequest & { sampling: SamplingRequest };

/** OpenAI's default for completions; chat answers may take the rest of the context, up to this. */
const DEFAULT_MAX_TOKENS: Record<Kind, number> = { completion: 16, chat: 256 };

/** The checked request: token ids, limits, sampling (throws ApiError 400 before anything runs). */
export function prepareGeneration(kind: Kind, json: unknown, ctx: GenerationContext): PreparedRequest {
  const tok = ctx.engine.tokenizer;
  let prompt: number[];
  let stop: string[];
  let sampling: SamplingRequest;
  if (kind === 'completion') {
    const r = parseCompletionRequest(json);
    const vocab = ctx.engine.model.config.vocab_size;
    if (typeof r.prompt !== 'string' && r.prompt.some((id) => id >= vocab))
      throw badRequest(`prompt: token ids must be below the vocabulary size ${vocab}`, 'prompt');
    prompt = typeof r.prompt === 'string' ? [tok.bos, ...tok.encode(r.prompt)] : r.prompt;
    ({ stop } = r);
    sampling = r;
  } else {
    const r = parseChatRequest(json);
    let text: string;
    try {
      text = ctx.chat.render(r.messages);
    } catch (e) {
      // Templates may refuse a conversation (raise_exception: roles out of order, ...): that is the request's fault.
      throw badRequest(`messages: the model's chat template refused them (${(e as Error).message})`, 'messages');
    }
    prompt = [tok.bos, ...tok.encode(text)];
    stop = [...r.stop, ...ctx.chat.stop];
    sampling = r;
  }
  const room = ctx.engine.context - prompt.length;
  if (prompt.length > ctx.maxPromptTokens || room < 1)
    throw badRequest(
      `the prompt has ${prompt.length} tokens; this endpoint takes at most ${Math.min(ctx.maxPromptTokens, ctx.engine.context - 1)}: shorten it`,
      kind === 'chat' ? 'messages' : 'prompt',
      'context_length_exceeded',
    );
  const maxTokens = sampling.maxTokens ?? Math.min(DEFAULT_MAX_TOKENS[kind], room);
  if (maxTokens > room)
    throw badRequest(
      `the prompt's ${prompt.length} tokens + max_tokens ${maxTokens} exceed the model's context of ${ctx.engine.context} positions: lower max_tokens to ${room} or shorten the prompt`,
      'max_tokens',
      'context_length_exceeded',
    );
  return {
    prompt,
    maxTokens,
    temperature: sampling.temperature,
    topP: sampling.topP,
    seed: sampling.seed,
    stop,
    sampling,
  };
}

/** Serve one generation request; returns the engine's result (for metrics). Throws ApiError before any byte is sent. */
export async function serveGeneration(
  kind: Kind,
  r: PreparedRequest,
  ctx: GenerationContext,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<EngineResult> {
  const base = {
    id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`,
    object: kind === 'chat' ? 'chat.completion' : 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: ctx.modelId,
  };
  const usageOf = (x: EngineResult) => ({
    prompt_tokens: x.promptTokens,
    completion_tokens: x.completionTokens,
    total_tokens: x.promptTokens + x.completionTokens,
  });
  if (!r.sampling.stream) {
    const x = await ctx.engine.run(r, () => {}, signal);
    const choice =
      kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content: x.text }, logprobs: null, finish_reason: x.finishReason }
        : { index: 0, text: x.text, logprobs: null, finish_reason: x.finishReason };
    const body = JSON.stringify({ ...base, choices: [choice], usage: usageOf(x) });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    return x;
  }
  const chunk = { ...base, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion' };
  let started = false;
  const send = (payload: unknown) => {
    if (!started) {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      started = true;
      if (kind === 'chat')
        send({
          ...chunk,
          choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
        });
    }
    res.write(`data: ${JSON.stringify(payload)}\n\n`);
  };
  const piece = (text: string, finish: string | null) =>
    kind === 'chat'
      ? { index: 0, delta: finish ? {} : { content: text }, logprobs: null, finish_reason: finish }
      : { index: 0, text, logprobs: null, finish_reason: finish };
  const x = await ctx.engine.run(r, (text) => send({ ...chunk, choices: [piece(text, null)] }), signal);
  send({ ...chunk, choices: [piece('', x.finishReason)] });
  if (r.sampling.includeUsage) send({ ...chunk, choices: [], usage: usageOf(x) });
  res.end('data: [DONE]\n\n');
  return x;
}
