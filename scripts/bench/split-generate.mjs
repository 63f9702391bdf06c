#!/usr/bin/env node
// `npm run bench -- split-generate [--prompt 128] [--new 128] [--clients 1,4,16] [--rtt 0,20] [--threads 1] [--server-threads 1]`
// (ONNX Runtime intra-op threads of the local model and the clients' parts, and of the serving trunk:
// one thread decodes faster than two at this size, measured: local 349 vs 297 tokens/s)
//
// Split inference against local generation of the same model (models/flglm-small-base, split
// 1 | 6 | 1): tokens/s for
// - local generation with the KV cache (the merged model in this process) and without it (the whole
//   sequence again for every new token);
// - split generation through a serving trunk in its own process (`flglm server --serve --from`, on
//   loopback, no TLS), with the caches on both sides and without them (a fresh session per token
//   that sends the whole sequence), on loopback and over a simulated link of 20 ms RTT;
// - 1, 4 and 16 concurrent split sessions (clients in this process: their head and tail run one at a
//   time on its thread, as they would share 2 cores anyway), aggregate tokens/s;
// and the server's KV cache per sequence. Greedy decoding of a held-out spam-assassin body.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dist, median, root, writeResult } from './common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const promptLen = Number(arg('--prompt', '128'));
const newTokens = Number(arg('--new', '128'));
const clientCounts = arg('--clients', '1,4,16').split(',').map(Number);
const rtts = arg('--rtt', '0,20').split(',').map(Number);
const clientThreads = Number(arg('--threads', '1'));
const serverThreads = Number(arg('--server-threads', '1'));
// Loopback, one session: local and split runs alternate this many times (medians reported; this
// machine's timings vary by a third between runs).
const repeats = Number(arg('--repeats', '3'));

const { importHfFolder } = await import(dist('model/hf.js'));
const { partOwns } = await import(dist('model/partition.js'));
const { saveCheckpoint } = await import(dist('training/checkpoint.js'));
const { generateWith, LocalStepper } = await import(dist('model/generate.js'));
const { PartDecoder } = await import(dist('model/part-decoder.js'));
const { SplitStepper } = await import(dist('client/split-generate.js'));
const { loadCorpus, splitEmail } = await import(dist('data/corpora.js'));

const base = join(root, 'models', 'flglm-small-base');
const split = { head_blocks: 1, tail_blocks: 1 };
const { config, store } = importHfFolder(base);
const peft = { method: 'full', lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q'] }, prefix: { length: 1 } };
const parts = (p) => new Map([...store].filter(([n]) => partOwns(p, config, split)(n)));
const client = new Map([...parts('head'), ...parts('tail')]);

// A held-out email body as the prompt: BOS + its first bytes.
const body = loadCorpus('spam-assassin')
  .map((d) => splitEmail(d.text).body)
  .find((b) => b.length > 2 * promptLen);
const prompt = [256, ...Buffer.from(body, 'utf8').subarray(0, promptLen - 1)];
const greedy = { maxNewTokens: newTokens, temperature: 0, topK: 0, seed: 0 };
const cacheLen = promptLen + newTokens;
const runtime = { threads: clientThreads };

// The serving trunk in its own process, from a folder holding the plan and the trunk.
const dir = mkdtempSync(join(tmpdir(), 'flglm-serve-bench-'));
writeFileSync(
  join(dir, 'config.yaml'),
  `model: {hf_path: ${base}}\nsplit: {head_blocks: 1, tail_blocks: 1}\nsecurity: {tls: false, payload_encryption: false}\nruntime: {threads: ${serverThreads}}\n`,
);
saveCheckpoint(join(dir, 'latest'), parts('trunk'), { model: config, peft, step: 0 });
const ready = join(dir, 'ready.json');
const server = spawn(
  process.execPath,
  [
    join(root, 'bin', 'flglm'),
    'server',
    '--serve',
    '--from',
    dir,
    '--insecure',
    '--port',
    '0',
    '--ready-file',
    ready,
    '--cache-len',
    String(cacheLen),
    '--max-rows',
    '16',
    '--max-sessions',
    '16',
    '--log-format',
    'json',
  ],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
let serverLog = '';
server.stdout.on('data', (d) => (serverLog += d));
server.stderr.on('data', (d) => (serverLog += d));
for (let i = 0; i < 200 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 100));
if (!existsSync(ready)) throw new Error(`the serving trunk did not start: ${serverLog}`);
const target = JSON.parse(readFileSync(ready, 'utf8')).address;
// The server logs one `serving_idle` event each time its last session ends: the trunk's own
// seconds (decode and prefill) and how many rows its decode batches held over that busy period.
let idleSeen = 0;
const idleEvents = () =>
  serverLog
    .split('\n')
    .filter((l) => l.includes('"serving_idle"'))
    .map((l) => JSON.parse(l));
/** Before a measured phase: let earlier sessions' events arrive, then count from here. */
const settle = async () => {
  await new Promise((r) => setTimeout(r, 300));
  idleSeen = idleEvents().length;
};
/** After it: the event of the busy period it was. */
const nextIdle = async () => {
  for (let i = 0; i < 100; i++) {
    const events = idleEvents();
    if (events.length > idleSeen) {
      idleSeen = events.length;
      return events.at(-1);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
};
const trunkOf = (e) =>
  e && {
    decode_rows: e.rows,
    decode_batches: e.batches,
    decode_s: +e.decode_s.toFixed(3),
    prefill_s: +e.prefill_s.toFixed(3),
    rows_per_trunk_s: +(e.rows / e.decode_s).toFixed(1),
  };
const serverRss = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

const time = async (f) => {
  const t0 = performance.now();
  const out = await f();
  return { out, s: (performance.now() - t0) / 1000 };
};
const results = {};

// Local, with the cache: one prefill, then one step per token.
const local = new LocalStepper(new PartDecoder(config, peft, store, 'full', split, cacheLen, runtime), 1, promptLen);
await generateWith(local, [prompt], { ...greedy, maxNewTokens: 4 }); // compile
const localOnce = () => time(() => generateWith(local, [prompt], greedy));
const loc = await localOnce();
results.local_cached = { tokens_per_s: newTokens / loc.s };
const reference = loc.out[0];
// Local, without: every token from a prefill of the whole sequence so far.
const noCache = async (stepperFor, n) => {
  const seq = [...prompt],
    out = [];
  for (let t = 0; t < n; t++) {
    const st = stepperFor(seq.length);
    const logits = await st.prefill([seq]);
    await st.release();
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    out.push(best);
    seq.push(best);
  }
  return out;
};
const fewer = Math.min(newTokens, 16); // without a cache each token costs a whole prefill: time 16 and scale
const locNo = await time(() =>
  noCache(
    (len) => new LocalStepper(new PartDecoder(config, peft, store, 'full', split, len + 1, runtime), 1, len),
    fewer,
  ),
);
results.local_uncached = { tokens_per_s: fewer / locNo.s, measured_tokens: fewer };

for (const rtt of rtts) {
  const link = rtt > 0 ? { rttMs: rtt, mbps: 0 } : null;
  const label = rtt > 0 ? `rtt_${rtt}ms` : 'loopback';
  const splitStepper = (len = promptLen, n = newTokens, timings) =>
    new SplitStepper({
      target,
      kit: null,
      config,
      peft,
      store: client,
      batch: 1,
      promptLen: len,
      maxNewTokens: n,
      runtime,
      link,
      timings,
    });
  const warm = splitStepper(promptLen, 4);
  await generateWith(warm, [prompt], { ...greedy, maxNewTokens: 4 }).finally(() => warm.release());
  const splitOnce = async () => {
    await settle();
    const timings = { trunk_s: 0, client_s: 0, bytes_up: 0, bytes_down: 0 };
    const one = splitStepper(promptLen, newTokens, timings);
    const run = await time(() => generateWith(one, [prompt], greedy).finally(() => one.release()));
    return { ...run, timings, trunk: trunkOf(await nextIdle()) };
  };
  // Loopback: local and split alternate, `repeats` pairs; elsewhere one split run.
  const pairs = [];
  for (let r = 0; r < (rtt === 0 ? repeats : 1); r++) {
    const l = rtt === 0 ? await localOnce() : null;
    pairs.push({ local: l ? newTokens / l.s : null, ...(await splitOnce()) });
  }
  if (rtt === 0) {
    results.local_cached = {
      tokens_per_s: median(pairs.map((p) => p.local)),
      runs: pairs.map((p) => +p.local.toFixed(1)),
    };
  }
  const mid = [...pairs].sort((a, b) => a.s - b.s)[Math.floor((pairs.length - 1) / 2)];
  const { timings, trunk: oneTrunk } = mid;
  const sp = { s: median(pairs.map((p) => p.s)) };
  const same = pairs.every((p) => JSON.stringify(p.out[0]) === JSON.stringify(reference));
  const sessionNo = await time(() => noCache((len) => splitStepper(len, 1), fewer));
  const rows = {
    cached: {
      tokens_per_s: newTokens / sp.s,
      runs: pairs.map((p) => +(newTokens / p.s).toFixed(1)),
      ...(rtt === 0 ? { x_local_per_pair: pairs.map((p) => +(newTokens / p.s / p.local).toFixed(3)) } : {}),
      same_tokens_as_local: same,
      ...Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, +v.toFixed(3)])),
      trunk: oneTrunk,
    },
    uncached: { tokens_per_s: fewer / sessionNo.s, measured_tokens: fewer },
  };
  // Concurrent sessions (loopback only: the point is the server's batching).
  if (rtt === 0) {
    rows.concurrent = [];
    for (const n of clientCounts) {
      const steppers = Array.from({ length: n }, () => splitStepper());
      await settle();
      const rssBefore = serverRss();
      const all = await time(() =>
        Promise.all(steppers.map((st) => generateWith(st, [prompt], greedy).finally(() => st.release()))),
      );
      const trunk = trunkOf(await nextIdle());
      rows.concurrent.push({
        clients: n,
        trunk,
        wall_s: +all.s.toFixed(3),
        aggregate_tokens_per_s: (n * newTokens) / all.s,
        per_client_tokens_per_s: newTokens / all.s,
        all_same_as_local: all.out.every((o) => JSON.stringify(o[0]) === JSON.stringify(reference)),
        server_rss_mib: Math.round(serverRss()),
        server_rss_before_mib: Math.round(rssBefore),
      });
      console.log(JSON.stringify(rows.concurrent[rows.concurrent.length - 1]));
    }
  }
  results[label] = rows;
  console.log(label, JSON.stringify(rows));
}
await local.release();
server.kill('SIGINT');
rmSync(dir, { recursive: true, force: true });

const L = config.num_hidden_layers - split.head_blocks - split.tail_blocks,
  dh = config.hidden_size / config.num_attention_heads;
writeResult('split-generate', {
  command: `npm run bench -- split-generate --prompt ${promptLen} --new ${newTokens} --clients ${clientCounts.join(',')} --rtt ${rtts.join(',')} --threads ${clientThreads} --server-threads ${serverThreads} --repeats ${repeats}`,
  model: `models/flglm-small-base (8 layers, d 256), split 1 | 6 | 1, greedy; ONNX Runtime threads: ${clientThreads} for the local model and the clients' parts, ${serverThreads} for the serving trunk`,
  prompt_tokens: promptLen,
  new_tokens: newTokens,
  server_cache_bytes_per_sequence: 2 * L * config.num_key_value_heads * cacheLen * dh * 4,
  results,
});
