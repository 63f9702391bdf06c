import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { chatFormat } from '../client/openai/chat-prompt.js';
import { Engine } from '../client/openai/engine.js';
import { startOpenAiServer } from '../client/openai/http-server.js';
import { readKitServer, withDefaultPort } from '../security/kit-server.js';
import { loadModelFolder } from '../training/model-folder.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { isLoopbackHost } from '../util/net.js';
import { intOption, portOption } from './options.js';

interface ServeOptions {
  openai?: boolean;
  model: string;
  server?: string;
  pki?: string;
  serverName?: string;
  insecure?: boolean;
  host: string;
  port: number;
  apiKeyFile?: string;
  modelName?: string;
  context?: number;
  maxConcurrent: number;
  maxPromptTokens?: number;
  maxBodyBytes: number;
  readyFile?: string;
}

/** The bearer token: from --api-key-file (first line) or FLGLM_API_KEY; never from the command line, where `ps` shows it. */
function apiKey(o: ServeOptions): string | null {
  if (o.apiKeyFile) {
    let key: string;
    try {
      key = readFileSync(o.apiKeyFile, 'utf8').split('\n')[0].trim();
    } catch (e) {
      throw new UserError(`--api-key-file ${o.apiKeyFile}: ${(e as Error).message}`);
    }
    if (key.length < 16) throw new UserError(`--api-key-file ${o.apiKeyFile}: the key must be at least 16 characters`);
    return key;
  }
  return process.env.FLGLM_API_KEY?.trim() || null;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'An OpenAI-compatible HTTP endpoint (/v1/models, /v1/completions, /v1/chat/completions, /metrics): split through a trunk server (--server), or a whole model here',
    )
    .option('--openai', 'speak the OpenAI API (the only protocol for now; required)')
    .requiredOption(
      '--model <dir>',
      "with --server: this client's checkpoint (head and tail); else a merged flglm or Hugging Face folder",
    )
    .option(
      '--server <host:port>',
      "generate through the trunk on this server (default with --pki: the kit's server.json)",
    )
    .option('--pki <dir>', "this client's kit (flglm keygen): TLS and session keys to the trunk server")
    .option('--server-name <dns>', "name on the server certificate (default: the kit's server.json)")
    .option('--insecure', 'plaintext to the trunk server, for loopback tests only')
    .option('--host <addr>', 'address to listen on (anything but loopback needs an API key)', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free one)', portOption('--port'), 8000)
    .option('--api-key-file <file>', 'bearer token clients must send (or FLGLM_API_KEY)')
    .option('--model-name <id>', "the model's id in /v1/models and responses (default: the folder's name)")
    .option(
      '--context <n>',
      "positions per request: prompt + max_tokens (default: the model's, at most 512)",
      intOption('--context', 2),
    )
    .option('--max-concurrent <n>', 'requests generated at once; more get 429', intOption('--max-concurrent', 1), 16)
    .option(
      '--max-prompt-tokens <n>',
      'longest prompt taken (default: the context less one)',
      intOption('--max-prompt-tokens', 1),
    )
    .option('--max-body-bytes <n>', 'largest request body', intOption('--max-body-bytes', 1024), 2 ** 20)
    .option('--ready-file <path>', 'write {address, port, pid} here once listening')
    .action(async (o: ServeOptions) => {
      if (!o.openai) throw new UserError('flglm serve speaks the OpenAI API only: add --openai');
      const key = apiKey(o);
      if (!isLoopbackHost(o.host) && !key)
        throw new UserError(
          `--host ${o.host} is not a loopback address: the endpoint would answer anyone who reaches it. Fix: --api-key-file FILE (or FLGLM_API_KEY), or --host 127.0.0.1`,
        );
      const split = o.server !== undefined || o.pki !== undefined;
      if (split && !o.pki && !o.insecure)
        throw new UserError("--server needs this client's kit: --pki DIR (or --insecure on loopback)");
      const kitServer = split && o.pki && !o.insecure ? readKitServer(o.pki) : null;
      const m = loadModelFolder(o.model, { partial: split });
      const context = o.context ?? Math.min(m.config.max_position_embeddings, 512);
      if (context > m.config.max_position_embeddings)
        throw new UserError(`--context ${context}: this model has ${m.config.max_position_embeddings} positions`);
      const target = split
        ? {
            target: withDefaultPort(o.server ?? kitServer?.address ?? '127.0.0.1:50051'),
            kit: o.insecure ? null : o.pki!,
            serverName: o.serverName ?? kitServer?.server_name ?? 'localhost',
          }
        : null;
      const engine = new Engine(m, context, target);
      const modelId = o.modelName ?? basename(resolve(o.model));
      const server = await startOpenAiServer({
        engine,
        modelId,
        chat: chatFormat(m.tokenizer),
        maxPromptTokens: o.maxPromptTokens ?? context - 1,
        host: o.host,
        port: o.port,
        apiKey: key,
        maxConcurrent: o.maxConcurrent,
        maxBodyBytes: o.maxBodyBytes,
        log: (line) => console.error(`flglm serve: ${line}`),
      }).catch(async (e: unknown) => {
        await engine.close();
        throw e;
      });
      if (o.readyFile)
        writeFileAtomic(
          o.readyFile,
          JSON.stringify({ address: `${o.host}:${server.port}`, port: server.port, pid: process.pid }),
        );
      console.log(
        `flglm serve: OpenAI API for "${modelId}" on http://${o.host}:${server.port}/v1 (${target ? `split, trunk at ${target.target}` : 'local, unsplit'}; ${context} positions per request, ${o.maxConcurrent} at once${key ? ', API key required' : ''})`,
      );
      await new Promise<void>((done) => {
        process.once('SIGINT', done);
        process.once('SIGTERM', done);
      });
      await server.close();
      await engine.close();
    });
}
