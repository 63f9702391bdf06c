#!/usr/bin/env node
// `flock /tmp/flglm-bench.lock npm run bench -- openai-serve [--prompt 64] [--new 64] [--streams 16] [--repeats 3]`
//
// The OpenAI endpoint (`flglm serve --openai`, its own process) in front of a serving trunk
// (`flglm server --serve`, its own process), models/flglm-small-base split 1 | 6 | 1 on loopback:
// - time to first token of a streamed completion (first text event over HTTP), against
//   `flglm generate --server`'s code path for the same prompt (a SplitStepper per invocation,
//   its parts compiled for it, until the first token), in this process;
// - aggregate tokens/s of 1 stream and of N concurrent streams (the trunk batches their steps).
// Greedy; writes bench-results/openai-serve.json.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { dist, machine, median, root, stats } from './common.mjs';
import { peft, startStack, streamOnce } from './lib/openai-stack.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const promptLen = Number(arg('--prompt', '64'));
const newTokens = Number(arg('--new', '64'));
const streams = Number(arg('--streams', '16'));
const repeats = Number(arg('--repeats', '3'));

const { generateWith } = await import(dist('model/generate.js'));
const { SplitStepper } = await import(dist('client/split-generate.js'));
const { loadCorpus, splitEmail } = await import(dist('data/corpora.js'));

const bodies = loadCorpus('spam-assassin')
  .map((d) => splitEmail(d.text).body)
  .filter((b) => Buffer.byteLength(b) > 2 * promptLen);
// BOS + promptLen - 1 bytes: the endpoint puts BOS before the text, as flglm generate does.
const promptOf = (k) =>
  Buffer.from(bodies[k % bodies.length], 'utf8')
    .subarray(0, promptLen - 1)
    .toString('latin1');
const body = (k) => ({ model: 'x', prompt: promptOf(k), max_tokens: newTokens, temperature: 0 });

const stack = await startStack({ context: Math.max(256, promptLen + newTokens), sessions: streams });
try {
  // flglm generate --server: each invocation opens a session with freshly compiled head and tail.
  const generateTtft = async (k) => {
    const ids = [256, ...Buffer.from(promptOf(k), 'latin1')];
    const t0 = performance.now();
    let first = null;
    const st = new SplitStepper({
      target: stack.target,
      kit: null,
      config: stack.config,
      peft,
      store: stack.client,
      batch: 1,
      promptLen: ids.length,
      maxNewTokens: 1,
      runtime: { threads: 1 },
    });
    await generateWith(st, [ids], {
      maxNewTokens: 1,
      temperature: 0,
      topK: 0,
      seed: 0,
      onToken: () => (first ??= (performance.now() - t0) / 1000),
    }).finally(() => st.release());
    return first;
  };
  const cold = await streamOnce(stack.url, { ...body(0), max_tokens: 1 });
  const gen = [],
    endpoint = [];
  for (let r = 0; r < repeats; r++) {
    gen.push(await generateTtft(r + 1));
    endpoint.push((await streamOnce(stack.url, { ...body(r + 1), max_tokens: 1 })).ttft_s);
  }
  // Throughput: one stream, then `streams` at once (after one warm round of each).
  const aggregate = async (n) => {
    const t0 = performance.now();
    const runs = await Promise.all(Array.from({ length: n }, (_, k) => streamOnce(stack.url, body(k))));
    const s = (performance.now() - t0) / 1000;
    return {
      tokens_per_s: runs.reduce((a, x) => a + x.tokens, 0) / s,
      seconds: s,
      ttft_s: stats(runs.map((x) => x.ttft_s)),
    };
  };
  await aggregate(1);
  await aggregate(streams);
  const one = [],
    many = [];
  for (let r = 0; r < repeats; r++) {
    one.push(await aggregate(1));
    many.push(await aggregate(streams));
  }
  const oneTps = median(one.map((x) => x.tokens_per_s)),
    manyTps = median(many.map((x) => x.tokens_per_s));
  const result = {
    benchmark: 'openai-serve',
    command: `flock /tmp/flglm-bench.lock npm run bench -- openai-serve --prompt ${promptLen} --new ${newTokens} --streams ${streams} --repeats ${repeats}`,
    machine: machine(),
    model: 'models/flglm-small-base, split 1 | 6 | 1, greedy, loopback, no TLS',
    prompt_tokens: promptLen,
    new_tokens: newTokens,
    ttft_s: {
      generate_server: stats(gen),
      endpoint_warm: stats(endpoint),
      endpoint_cold: cold.ttft_s,
      ratio_endpoint_to_generate: median(endpoint) / median(gen),
    },
    throughput: {
      one_stream_tokens_per_s: oneTps,
      streams,
      concurrent_tokens_per_s: manyTps,
      speedup: manyTps / oneTps,
      one: one,
      concurrent: many,
    },
    load: (await import('node:os')).loadavg(),
  };
  mkdirSync(join(root, 'bench-results'), { recursive: true });
  writeFileSync(join(root, 'bench-results', 'openai-serve.json'), JSON.stringify(result, null, 2));
  console.log(
    JSON.stringify(
      { ttft_s: result.ttft_s, throughput: { ...result.throughput, one: undefined, concurrent: undefined } },
      null,
      2,
    ),
  );
} finally {
  stack.stop();
}
