// A serving trunk (`flglm server --serve`) and an OpenAI endpoint in front of it (`flglm serve
// --openai`), each in its own process on loopback, for models/flglm-small-base split 1 | 6 | 1:
// what openai-serve.mjs and openai-fuzz.mjs measure against.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dist, root } from '../common.mjs';

const { importHfFolder } = await import(dist('model/hf.js'));
const { partOwns } = await import(dist('model/partition.js'));
const { saveCheckpoint } = await import(dist('training/checkpoint.js'));

export const base = join(root, 'models', 'flglm-small-base');
export const split = { head_blocks: 1, tail_blocks: 1 };
export const peft = { method: 'full', lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q'] }, prefix: { length: 1 } };

function child(args, ready) {
  const p = spawn(process.execPath, [join(root, 'bin', 'flglm'), ...args, '--ready-file', ready], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  p.log = '';
  p.stdout.on('data', (d) => (p.log += d));
  p.stderr.on('data', (d) => (p.log += d));
  return p;
}

async function waitReady(p, ready) {
  for (let i = 0; i < 300 && !existsSync(ready) && p.exitCode === null; i++)
    await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(ready)) throw new Error(`${p.spawnargs.slice(2, 4).join(' ')} did not start: ${p.log}`);
  return JSON.parse(readFileSync(ready, 'utf8'));
}

/** Start both; `context` positions per request, `sessions` at once. */
export async function startStack({ context = 256, sessions = 16, serveArgs = [] } = {}) {
  const { config, store } = importHfFolder(base);
  const parts = (p) => new Map([...store].filter(([n]) => partOwns(p, config, split)(n)));
  const dir = mkdtempSync(join(tmpdir(), 'flglm-openai-bench-'));
  writeFileSync(
    join(dir, 'config.yaml'),
    `model: {hf_path: ${base}}\nsplit: {head_blocks: 1, tail_blocks: 1}\nsecurity: {tls: false, payload_encryption: false}\nruntime: {threads: 1}\n`,
  );
  saveCheckpoint(join(dir, 'latest'), parts('trunk'), { model: config, peft, step: 0 });
  const clientDir = join(dir, 'client');
  saveCheckpoint(clientDir, new Map([...parts('head'), ...parts('tail')]), { model: config, peft, step: 0 });
  const trunk = child(
    ['server', '--serve', '--from', dir, '--insecure', '--port', '0', '--cache-len', String(context)].concat([
      '--max-rows',
      String(sessions),
      '--max-sessions',
      String(sessions),
      '--log-format',
      'json',
    ]),
    join(dir, 'trunk-ready.json'),
  );
  const target = (await waitReady(trunk, join(dir, 'trunk-ready.json'))).address;
  const serve = child(
    ['serve', '--openai', '--model', clientDir, '--server', target, '--insecure', '--port', '0'].concat([
      '--context',
      String(context),
      '--max-concurrent',
      String(sessions),
      ...serveArgs,
    ]),
    join(dir, 'serve-ready.json'),
  );
  const { port } = await waitReady(serve, join(dir, 'serve-ready.json'));
  return {
    config,
    store,
    client: new Map([...parts('head'), ...parts('tail')]),
    target,
    url: `http://127.0.0.1:${port}`,
    trunk,
    serve,
    stop: () => {
      serve.kill('SIGINT');
      trunk.kill('SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One streamed completion over plain fetch: seconds to the first text, total seconds, completion tokens. */
export async function streamOnce(url, body, headers = {}) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let first = null,
    usage = null,
    text = '',
    buffer = '';
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let i;
    while ((i = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, i).replace(/^data: /, '');
      buffer = buffer.slice(i + 2);
      if (event === '[DONE]') continue;
      const chunk = JSON.parse(event);
      if (chunk.usage) usage = chunk.usage;
      const piece = chunk.choices?.[0]?.text ?? '';
      if (piece && first === null) first = (performance.now() - t0) / 1000;
      text += piece;
    }
  }
  return { ttft_s: first, s: (performance.now() - t0) / 1000, tokens: usage?.completion_tokens ?? 0, text };
}
