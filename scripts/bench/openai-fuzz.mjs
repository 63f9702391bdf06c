#!/usr/bin/env node
// `flock /tmp/flglm-bench.lock npm run bench -- openai-fuzz [--seconds 60] [--seed 1]` (at most 120 s)
//
// Malformed and hostile requests at the OpenAI endpoint (`flglm serve --openai` in front of a
// serving trunk, both their own processes, loopback) for a bounded time: broken JSON, wrong types
// and ranges in every field, unknown paths and methods, oversized bodies, bad keys, truncated
// bodies, clients that vanish mid-stream, and good requests between them. Passes when neither
// process exits, no answer is a 500 (an unexpected error inside the endpoint), every answer that
// is not a 200 has the API's error shape, and a good request after the storm still works and the
// trunk has no session left. Writes bench-results/openai-fuzz.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { machine, root } from './common.mjs';
import { startStack } from './lib/openai-stack.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const seconds = Math.min(120, Number(arg('--seconds', '60')));
let seed = Number(arg('--seed', '1')) >>> 0;
const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const KEY = 'fuzz-key-0123456789abcdef';
process.env.FLGLM_API_KEY = KEY;
const stack = await startStack({ context: 128, sessions: 4, serveArgs: ['--max-body-bytes', '16384'] });
const { hostname, port } = new URL(stack.url);

const values = [
  null,
  true,
  false,
  0,
  -1,
  1,
  2,
  1.5,
  1e308,
  -1e308,
  2 ** 53,
  'x',
  '',
  '\u0000',
  '🙂'.repeat(50),
  [],
  [1],
  ['a', 'b'],
  {},
  { a: 1 },
  [[1, 2]],
  'a'.repeat(3000),
];
const keys = [
  'prompt',
  'messages',
  'model',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'n',
  'stop',
  'seed',
  'stream',
  'stream_options',
  'logprobs',
  'echo',
  'best_of',
  'tools',
  'response_format',
  'logit_bias',
];
const good = () =>
  rand() < 0.5
    ? {
        path: '/v1/completions',
        body: { model: 'x', prompt: 'Hello', max_tokens: 1 + Math.floor(rand() * 8), stream: rand() < 0.5 },
      }
    : {
        path: '/v1/chat/completions',
        body: { model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, stream: rand() < 0.5 },
      };
function mutate() {
  const { path, body } = good();
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) {
    const k = pick(keys);
    if (rand() < 0.2) delete body[k];
    else body[k] = pick(values);
  }
  if (rand() < 0.2) body.messages = [{ role: pick(['user', 'bot', 5, null]), content: pick(values) }];
  return { path, text: JSON.stringify(body) };
}
const raw = () => {
  const t = mutate().text;
  return pick([
    t.slice(0, Math.floor(rand() * t.length)),
    t.replace(/[{}]/g, ''),
    'null',
    '[]',
    '"x"',
    '',
    '\u0000\u00ff',
    'x'.repeat(20000),
    t + t,
  ]);
};

const counts = {};
const problems = [];
function send({ method = 'POST', path, text, key = KEY, vanish = false }) {
  return new Promise((resolve) => {
    const req = request(
      {
        hostname,
        port,
        path,
        method,
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      },
      (res) => {
        let data = '';
        res.on('data', (d) => {
          data += d;
          if (vanish) req.destroy();
        });
        res.on('error', () => resolve('vanished'));
        res.on('close', () => {
          const s = res.statusCode;
          counts[s] = (counts[s] ?? 0) + 1;
          if (s === 500) problems.push({ path, text: text?.slice(0, 200), data: data.slice(0, 300) });
          if (s !== 200 && !vanish) {
            try {
              const e = JSON.parse(data).error;
              if (typeof e?.message !== 'string' || typeof e?.type !== 'string') throw new Error('shape');
            } catch {
              problems.push({
                path,
                status: s,
                text: text?.slice(0, 200),
                data: data.slice(0, 300),
                why: 'not an API error',
              });
            }
          }
          resolve(s);
        });
      },
    );
    req.on('error', () => resolve('error'));
    req.setTimeout(30000, () => req.destroy());
    if (text !== undefined) req.write(text);
    if (vanish && rand() < 0.3) req.destroy();
    else req.end();
  });
}

const kinds = [
  () => send(mutate()),
  () => send({ path: pick(['/v1/completions', '/v1/chat/completions']), text: raw() }),
  () =>
    send({
      path: pick(['/', '/v1', '/v1/embeddings', '/v1/models/x', '/metrics?x=1', '/v1/completions/../x']),
      method: pick(['GET', 'POST', 'PUT', 'DELETE']),
      text: '{}',
    }),
  () => send({ ...mutate(), key: pick([null, 'wrong', KEY + 'x', '']) }),
  () =>
    send({
      path: '/v1/completions',
      text: JSON.stringify({ model: 'x', prompt: 'A long story', max_tokens: 100, stream: true }),
      vanish: true,
    }),
  () => send({ path: good().path, text: JSON.stringify(good().body) }),
];
const t0 = Date.now();
let sent = 0;
const workers = Array.from({ length: 6 }, async () => {
  while (Date.now() - t0 < seconds * 1000 && stack.serve.exitCode === null && stack.trunk.exitCode === null) {
    await pick(kinds)();
    sent++;
  }
});
await Promise.all(workers);
await new Promise((r) => setTimeout(r, 1000));
const after = await send({
  path: '/v1/completions',
  text: JSON.stringify({ model: 'x', prompt: 'Hello', max_tokens: 4 }),
});
const alive = stack.serve.exitCode === null && stack.trunk.exitCode === null;
const metrics = await (await fetch(`${stack.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
const inFlight = Number(/flglm_openai_requests_in_flight (\d+)/.exec(metrics)?.[1]);
const result = {
  benchmark: 'openai-fuzz',
  command: `flock /tmp/flglm-bench.lock npm run bench -- openai-fuzz --seconds ${seconds}`,
  machine: machine(),
  seconds,
  requests: sent,
  statuses: counts,
  problems: problems.slice(0, 20),
  problem_count: problems.length,
  processes_alive: alive,
  good_request_after: after,
  in_flight_after: inFlight,
  pass: alive && after === 200 && problems.length === 0 && inFlight === 0,
};
stack.stop();
mkdirSync(join(root, 'bench-results'), { recursive: true });
writeFileSync(join(root, 'bench-results', 'openai-fuzz.json'), JSON.stringify(result, null, 2));
console.log(JSON.stringify({ ...result, problems: result.problems.slice(0, 3) }, null, 2));
if (!alive) console.log(stack.serve.log.slice(-2000));
process.exit(result.pass ? 0 : 1);
