import OpenAI from 'openai';
import { request } from 'node:http';
import { PRESETS } from '../../src/model/config.js';
import { initParams, type PeftConfig } from '../../src/model/params.js';
import { partOwns } from '../../src/model/partition.js';
import { generateWith } from '../../src/model/generate.js';
import { SplitStepper } from '../../src/client/split-generate.js';
import { ByteTokenizer } from '../../src/data/tokenizer.js';
import { Engine } from '../../src/client/openai/engine.js';
import { PLAIN_CHAT } from '../../src/client/openai/chat-prompt.js';
import { startOpenAiServer } from '../../src/client/openai/http-server.js';
import { TrunkServer, DEFAULT_SERVE_LIMITS, type ServeLimits } from '../../src/server/serving/trunk-serving.js';
import { startTransport } from '../../src/server/transport.js';
import type { ModelFolder } from '../../src/training/model-folder.js';
import { config as parseConfig } from '../helpers/federation.js';
import { keygen } from '../../src/security/pki.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The OpenAI-compatible endpoint in front of split generation, spoken to with the official `openai`
// SDK on 127.0.0.1: a real serving trunk (worker thread, gRPC) on an ephemeral port, head and tail
// in the endpoint. What it answers must be what `flglm generate --server`'s code path (a
// SplitStepper per prompt, generateWith) produces for the same prompt and seed.
const config = { ...PRESETS.tiny };
const split = { head_blocks: 1, tail_blocks: 1 };
const peft: PeftConfig = {
  method: 'full',
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q'] },
  prefix: { length: 2 },
};
const KEY = 'test-key-0123456789abcdef';
const CONTEXT = 128;

const store = initParams(config, 11);
for (const [, p] of store) for (let i = 0; i < p.data.length; i++) p.data[i] *= 4; // a non-flat greedy path
const [head, trunkOwns, tail] = (['head', 'trunk', 'tail'] as const).map((p) => partOwns(p, config, split));
const clientStore = new Map([...store].filter(([n]) => head(n) || tail(n)));
const trunkParams = [...store].filter(([n]) => trunkOwns(n));
const tok = new ByteTokenizer();
const folder: ModelFolder = { config, store: clientStore, peft, tokenizer: tok, dir: '' };

async function trunk(limits: Partial<ServeLimits> = {}, kit: string | null = null) {
  const events: Record<string, unknown>[] = [];
  const server = await TrunkServer.start({
    cfg: parseConfig('model: {preset: tiny}\nsplit: {head_blocks: 1, tail_blocks: 1}\nruntime: {threads: 1}\n'),
    model: config,
    params: trunkParams,
    kit,
    revocation: null,
    limits: { ...DEFAULT_SERVE_LIMITS, cacheLen: CONTEXT, ...limits },
    log: (_m: string, fields?: Record<string, unknown>) => void (fields && events.push(fields)),
  });
  const transport = await startTransport({ kit, port: 0, revocation: null, onGenerate: server.onGenerate });
  return {
    server,
    events,
    target: `127.0.0.1:${transport.port}`,
    close: () => transport.close().then(() => server.close()),
  };
}

async function endpoint(target: string, o: { maxConcurrent?: number; kit?: string } = {}) {
  const engine = new Engine(folder, CONTEXT, { target, kit: o.kit ?? null, serverName: 'localhost' }, { threads: 1 });
  const http = await startOpenAiServer({
    engine,
    modelId: 'tiny-split',
    chat: PLAIN_CHAT,
    maxPromptTokens: 100,
    host: '127.0.0.1',
    port: 0,
    apiKey: KEY,
    maxConcurrent: o.maxConcurrent ?? 16,
    maxBodyBytes: 65536,
  });
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${http.port}/v1`, apiKey: KEY, maxRetries: 0 });
  return { engine, http, client, close: () => http.close().then(() => engine.close()) };
}

/** `flglm generate --server`'s code path for one prompt (generate-command.ts). */
async function reference(
  target: string,
  prompt: string,
  o: { max: number; temperature: number; topP: number; seed: number; stop?: string[] },
) {
  const ids = [tok.bos, ...tok.encode(prompt)];
  const stepper = new SplitStepper({
    target,
    kit: null,
    config,
    peft,
    store: clientStore,
    batch: 1,
    promptLen: ids.length,
    maxNewTokens: o.max,
    runtime: { threads: 1 },
  });
  const [out] = await generateWith(stepper, [ids], {
    maxNewTokens: o.max,
    temperature: o.temperature,
    topK: 0,
    topP: o.topP,
    seed: o.seed,
    eos: tok.eos,
    stop: (o.stop ?? []).map((s) => tok.encode(s)),
  }).finally(() => stepper.release());
  return { text: tok.decode(out), promptTokens: ids.length, completionTokens: out.length };
}

const waitFor = async (cond: () => boolean, ms = 5000) => {
  for (const t0 = Date.now(); !cond() && Date.now() - t0 < ms;) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

let t: Awaited<ReturnType<typeof trunk>>;
let e: Awaited<ReturnType<typeof endpoint>>;
beforeAll(async () => {
  t = await trunk();
  e = await endpoint(t.target);
}, 60_000);
afterAll(async () => {
  await e?.close();
  await t?.close();
});

const cases = [
  { name: 'greedy', temperature: 0, topP: 1, seed: 0 },
  { name: 'sampled', temperature: 0.9, topP: 0.9, seed: 1234 },
];

test.each(cases)(
  'completions, plain and streamed, equal flglm generate --server ($name)',
  async (c) => {
    const prompt = 'Subject: the quarterly report';
    const ref = await reference(t.target, prompt, { max: 24, ...c });
    expect(ref.completionTokens).toBeGreaterThan(4);
    const plain = await e.client.completions.create({
      model: 'tiny-split',
      prompt,
      max_tokens: 24,
      temperature: c.temperature,
      top_p: c.topP,
      seed: c.seed,
    });
    expect(plain.choices[0].text).toBe(ref.text);
    expect(plain.usage).toEqual({
      prompt_tokens: ref.promptTokens,
      completion_tokens: ref.completionTokens,
      total_tokens: ref.promptTokens + ref.completionTokens,
    });
    expect(plain.choices[0].finish_reason).toBe(ref.completionTokens === 24 ? 'length' : 'stop');
    const stream = await e.client.completions.create({
      model: 'tiny-split',
      prompt,
      max_tokens: 24,
      temperature: c.temperature,
      top_p: c.topP,
      seed: c.seed,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      usage ??= chunk.usage ?? undefined;
    }
    expect(text).toBe(ref.text);
    expect(usage?.completion_tokens).toBe(ref.completionTokens);
  },
  60_000,
);

test('chat completions, plain and streamed, equal flglm generate --server on the rendered prompt; stop sequences cut the answer', async () => {
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'Write a subject line.' },
  ];
  const rendered = PLAIN_CHAT.render(messages);
  expect(rendered).toBe('System: Be brief.\nUser: Write a subject line.\nAssistant:');
  const ref = await reference(t.target, rendered, { max: 20, temperature: 0, topP: 1, seed: 0, stop: PLAIN_CHAT.stop });
  const plain = await e.client.chat.completions.create({ model: 'x', messages, max_tokens: 20, temperature: 0 });
  expect(plain.choices[0].message).toMatchObject({ role: 'assistant', content: ref.text });
  expect(plain.usage?.prompt_tokens).toBe(ref.promptTokens);
  let text = '';
  for await (const chunk of await e.client.chat.completions.create({
    model: 'x',
    messages,
    max_tokens: 20,
    temperature: 0,
    stream: true,
  }))
    text += chunk.choices[0]?.delta?.content ?? '';
  expect(text).toBe(ref.text);
  // A stop sequence from the middle of the greedy answer ends it just before.
  const stop = ref.text.slice(5, 7);
  const cut = await e.client.chat.completions.create({ model: 'x', messages, max_tokens: 20, temperature: 0, stop });
  expect(cut.choices[0].message.content).toBe(ref.text.slice(0, ref.text.indexOf(stop)));
  expect(cut.choices[0].finish_reason).toBe('stop');
}, 60_000);

test('16 concurrent streams all complete, each with its own answer, and the trunk batches their steps', async () => {
  const prompts = Array.from({ length: 16 }, (_, i) => `Message ${i}: hello`);
  const alone = await Promise.all(
    prompts.slice(0, 2).map((p) => reference(t.target, p, { max: 16, temperature: 0, topP: 1, seed: 0 })),
  );
  expect(await waitFor(() => t.server.busyPeriod.sessions === 0)).toBe(true);
  const texts = await Promise.all(
    prompts.map(async (prompt) => {
      let text = '';
      let finish: string | null = null;
      for await (const chunk of await e.client.completions.create({
        model: 'x',
        prompt,
        max_tokens: 16,
        temperature: 0,
        stream: true,
      })) {
        text += chunk.choices[0]?.text ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      expect(finish).not.toBeNull();
      return text;
    }),
  );
  expect(texts.slice(0, 2)).toEqual(alone.map((r) => r.text));
  expect(new Set(texts).size).toBeGreaterThan(1);
  expect(await waitFor(() => t.server.busyPeriod.sessions === 0)).toBe(true);
  // The trunk's last busy period: the 16 sessions, their decode steps batched (more than one row per batch).
  const idle = t.events.filter((x) => x.event === 'serving_idle').at(-1)!;
  expect(idle.sessions).toBe(16);
  expect((idle.rows as number) / (idle.batches as number)).toBeGreaterThan(1.5);
  expect(await waitFor(() => t.server.stats().sessions === 0)).toBe(true);
  expect(e.http.active).toBe(0);
}, 60_000);

test("a client that goes away mid-stream cancels its request: the trunk's cache rows are freed", async () => {
  const url = new URL(`http://127.0.0.1:${e.http.port}/v1/completions`);
  const body = JSON.stringify({ model: 'x', prompt: 'A long story:', max_tokens: 110, temperature: 0, stream: true });
  let sawRows = 0;
  await new Promise<void>((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } },
      (res) => {
        expect(res.statusCode).toBe(200);
        res.once('data', () => {
          sawRows = t.server.stats().rowsInUse;
          req.destroy(); // the client disconnects after its first chunk
          resolve();
        });
      },
    );
    req.on('error', () => {});
    req.once('error', reject);
    req.end(body);
  });
  expect(sawRows).toBe(1);
  expect(await waitFor(() => t.server.stats().rowsInUse === 0 && t.server.stats().sessions === 0)).toBe(true);
  expect(await waitFor(() => e.http.active === 0)).toBe(true);
  const metrics = await (
    await fetch(`http://127.0.0.1:${e.http.port}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })
  ).text();
  expect(metrics).toMatch(/flglm_openai_requests_total\{endpoint="\/v1\/completions",status="cancelled"\} 1/);
  expect(metrics).toMatch(/flglm_openai_time_to_first_token_seconds_count [1-9]/);
}, 60_000);

test('over mutual TLS with a session key (--pki), as flglm generate --server: the same answer as in plaintext', async () => {
  const pki = join(mkdtempSync(join(tmpdir(), 'flglm-openai-')), 'pki');
  keygen({ out: pki, clients: ['alice'], serverName: 'localhost', serverIps: ['127.0.0.1'], days: 1, keyBits: 2048 });
  const secure = await trunk({}, join(pki, 'server'));
  const tls = await endpoint(secure.target, { kit: join(pki, 'clients', 'alice') });
  try {
    const ask = (c: OpenAI) =>
      c.completions.create({ model: 'x', prompt: 'Subject: keys', max_tokens: 12, temperature: 0 });
    expect((await ask(tls.client)).choices[0].text).toBe((await ask(e.client)).choices[0].text);
  } finally {
    await tls.close();
    await secure.close();
  }
}, 60_000);
