import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { SplitStepper } from '../client/split-generate.js';
import { generateWith, LocalStepper, type Stepper } from '../model/generate.js';
import { PartDecoder } from '../model/part-decoder.js';
import { readKitServer, withDefaultPort } from '../security/kit-server.js';
import { loadModelFolder } from '../training/model-folder.js';
import { UserError } from '../util/errors.js';
import { collect, intOption, numberOption } from './options.js';

const positiveInt = (flag: string) => intOption(flag, 1);

/** Prompts from --prompt, or a .jsonl file of {"prompt": ...} lines / a .txt file with one per line. */
function readPrompts(o: { prompt?: string; prompts?: string }): string[] {
  if (o.prompt !== undefined && o.prompts) throw new UserError('give --prompt TEXT or --prompts FILE, not both');
  if (o.prompt !== undefined) return [o.prompt];
  if (!o.prompts) throw new UserError('nothing to continue: give --prompt TEXT or --prompts FILE.jsonl');
  if (!existsSync(o.prompts)) throw new UserError(`--prompts ${o.prompts}: no such file`);
  return readFileSync(o.prompts, 'utf8')
    .split('\n')
    .map((line, i) => [line, i + 1] as const)
    .filter(([l]) => l.trim())
    .map(([line, n]) => {
      if (!o.prompts!.endsWith('.jsonl')) return line;
      try {
        const v = JSON.parse(line) as { prompt?: unknown };
        if (typeof v.prompt !== 'string') throw new Error('no "prompt" string');
        return v.prompt;
      } catch (e) {
        throw new UserError(`${o.prompts}:${n}: expected {"prompt": "..."} (${(e as Error).message})`);
      }
    });
}

export function registerGenerateCommand(program: Command): void {
  program
    .command('generate')
    .description(
      'Generate text with a KV cache from a saved model, or split: head and tail here, the trunk on a server (flglm server --serve)',
    )
    .requiredOption(
      '--model <dir>',
      "a flglm checkpoint or Hugging Face folder; with --server, this client's checkpoint (head and tail)",
    )
    .option('--prompt <text>', 'text to continue')
    .option(
      '--prompts <file>',
      'many prompts: a .jsonl file of {"prompt": ...} lines, or a .txt file with one per line',
    )
    .option(
      '--server <host:port>',
      "generate through the trunk on this server (the model stays split; default: the kit's server.json)",
    )
    .option('--pki <dir>', "with --server: this client's kit (flglm keygen)")
    .option('--server-name <dns>', "with --server: name on the server certificate (default: the kit's server.json)")
    .option('--insecure', 'with --server: plaintext, for loopback tests only')
    .option('--max-new-tokens <n>', 'tokens to generate per prompt', positiveInt('--max-new-tokens'), 64)
    .option('--temperature <t>', '0 = greedy', numberOption('--temperature', 0), 0)
    .option('--top-k <k>', '0 = no top-k filter', intOption('--top-k', 0), 0)
    .option(
      '--top-p <p>',
      'nucleus sampling: keep the most likely tokens up to this probability (1 = all)',
      numberOption('--top-p', 0, 1),
      1,
    )
    .option('--stop <text>', 'stop a sequence when it produces this text (repeatable)', collect, [])
    .option('--seed <n>', 'sampling seed', intOption('--seed', 0), 0)
    .option('--batch-size <n>', 'prompts decoded together', positiveInt('--batch-size'), 8)
    .option('--json', 'one JSON line per prompt: the text, its token counts and timings')
    .action(
      async (o: {
        model: string;
        prompt?: string;
        prompts?: string;
        server?: string;
        pki?: string;
        serverName?: string;
        insecure?: boolean;
        maxNewTokens: number;
        temperature: number;
        topK: number;
        topP: number;
        stop: string[];
        seed: number;
        batchSize: number;
        json?: boolean;
      }) => {
        const prompts = readPrompts(o);
        const split = o.server !== undefined || o.pki !== undefined;
        if (split && !o.pki && !o.insecure)
          throw new UserError("--server needs this client's kit: --pki DIR (or --insecure on loopback)");
        const kitServer = split && o.pki && !o.insecure ? readKitServer(o.pki) : null;
        const target = split ? withDefaultPort(o.server ?? kitServer?.address ?? '127.0.0.1:50051') : '';
        const m = loadModelFolder(o.model, { partial: split });
        const tok = m.tokenizer;
        const stop = o.stop.map((s) => tok.encode(s)).filter((s) => s.length > 0);
        const stream = prompts.length === 1 && !o.json;
        for (let at = 0; at < prompts.length; at += o.batchSize) {
          const batch = prompts.slice(at, at + o.batchSize);
          const ids = batch.map((p) => [tok.bos, ...tok.encode(p)]);
          const promptLen = Math.max(...ids.map((p) => p.length));
          const timings = { trunk_s: 0, client_s: 0, bytes_up: 0, bytes_down: 0 };
          const cacheLen = Math.min(m.config.max_position_embeddings, promptLen + o.maxNewTokens);
          const stepper: Stepper = split
            ? new SplitStepper({
                target,
                kit: o.insecure ? null : o.pki!,
                serverName: o.serverName ?? kitServer?.server_name ?? 'localhost',
                config: m.config,
                peft: m.peft,
                store: m.store,
                batch: batch.length,
                promptLen,
                maxNewTokens: o.maxNewTokens,
                timings,
              })
            : new LocalStepper(
                new PartDecoder(m.config, m.peft, m.store, 'full', { head_blocks: 0, tail_blocks: 0 }, cacheLen),
                batch.length,
                promptLen,
              );
          if (stream) process.stdout.write(batch[0]);
          let shown = '';
          const streamed: number[] = [];
          const t0 = performance.now();
          let out: number[][];
          try {
            out = await generateWith(stepper, ids, {
              maxNewTokens: o.maxNewTokens,
              temperature: o.temperature,
              topK: o.topK,
              topP: o.topP,
              seed: o.seed,
              eos: tok.eos,
              stop,
              // Streaming: print what the new ids decode to, holding back an incomplete character.
              onToken: stream
                ? (_row, id) => {
                    streamed.push(id);
                    const text = tok.decode(streamed);
                    if (!text.endsWith('\uFFFD')) {
                      process.stdout.write(text.slice(shown.length));
                      shown = text;
                    }
                  }
                : undefined,
            });
          } finally {
            await stepper.release();
          }
          const seconds = (performance.now() - t0) / 1000;
          batch.forEach((p, k) => {
            const text = tok.decode(out[k]);
            if (o.json)
              console.log(
                JSON.stringify({
                  prompt: p,
                  text,
                  prompt_tokens: ids[k].length,
                  new_tokens: out[k].length,
                  seconds,
                  tokens_per_s: out.reduce((a, r) => a + r.length, 0) / seconds,
                  ...(split ? { mode: 'split', ...timings } : { mode: 'local' }),
                }),
              );
            else if (stream) process.stdout.write(text.slice(shown.length) + '\n');
            else process.stdout.write(`${p}${text}\n`);
          });
        }
      },
    );
}
