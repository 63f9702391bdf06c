import type { Command } from 'commander';
import { join } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { readSilo } from '../data/examples.js';
import { startTransport } from '../server/transport.js';
import { SplitServer } from '../server/split-server.js';
import { runClient } from '../client/split-client.js';
import { NotYetAvailable, UserError } from '../util/errors.js';

const warnInsecure = () => console.error('flglm: WARNING: --insecure: no TLS and no payload encryption. Activations travel in the clear; use only on loopback for tests.');

export function registerFederationCommands(program: Command): void {
  program
    .command('server')
    .description('Run the split-learning server (trunk) in sequential, batch or hierarchical mode')
    .requiredOption('--config <file>', 'experiment YAML (the server is the source of truth for the plan)')
    .option('--pki <dir>', 'server startup kit made by flglm keygen (e.g. ./pki/server)')
    .option('--port <n>', 'port to listen on (0 = any free port)', '50051')
    .option('--host <addr>', 'address to bind', '127.0.0.1')
    .option('--mode <mode>', 'sequential | batch | hierarchical (overrides federation.mode)')
    .option('--checkpoints <dir>', 'write the trunk checkpoint here at every round end')
    .option('--insecure', 'plaintext, for loopback tests only')
    .action(async (o: { config: string; pki?: string; port: string; host: string; mode?: string; checkpoints?: string; insecure?: boolean }) => {
      const cfg = loadConfigFile(o.config);
      const mode = o.mode ?? cfg.federation.mode;
      if (mode !== 'sequential') throw new NotYetAvailable(`server mode "${mode}" (use --mode sequential)`, 'issue #6 (federation)');
      if (!o.pki && !o.insecure) throw new UserError('--pki is required (a server kit from flglm keygen); for loopback tests only, pass --insecure');
      if (o.insecure) warnInsecure();
      const kit = o.insecure ? null : o.pki!;
      const server = new SplitServer(cfg, kit, { log: (m) => console.error(`[server] ${m}`) }, o.checkpoints ?? null);
      const transport = await startTransport({ kit, host: o.host, port: Number(o.port), onSession: server.onSession, log: (m) => console.error(`[server] ${m}`) });
      console.log(`flglm server (${mode}) listening on ${o.host}:${transport.port}, waiting for ${cfg.federation.clients} clients`);
      const stop = () => { void transport.close().then(() => process.exit(130)); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const summary = await server.done;
      console.log(JSON.stringify(summary));
      await transport.close();
    });
  program
    .command('client')
    .description('Run a client: head and tail on a local data silo, talking to a server')
    .requiredOption('--data <dir>', 'this client\'s silo: a folder of .jsonl/.txt examples')
    .option('--test <dir>', 'held-out folder for the final evaluation (default: the silo itself)')
    .option('--server <host:port>', 'server address', '127.0.0.1:50051')
    .option('--pki <dir>', 'this client\'s startup kit made by flglm keygen (e.g. ./pki/clients/alice)')
    .option('--server-name <dns>', 'name on the server certificate', 'localhost')
    .option('--checkpoints <dir>', 'save this client\'s parts here after every round')
    .option('--insecure', 'plaintext, for loopback tests only')
    .action(async (o: { data: string; test?: string; server: string; pki?: string; serverName: string; checkpoints?: string; insecure?: boolean }) => {
      if (!o.pki && !o.insecure) throw new UserError('--pki is required (a client kit from flglm keygen); for loopback tests only, pass --insecure');
      if (o.insecure) warnInsecure();
      const train = readSilo(o.data);
      const test = o.test ? readSilo(o.test) : train;
      const r = await runClient({
        target: o.server, kit: o.insecure ? null : o.pki!, serverName: o.serverName, train, test, checkpointDir: o.checkpoints ? join(o.checkpoints) : null,
        log: (m) => console.error(`[client] ${m}`),
        onStep: (round, step, loss) => console.error(`[client] round ${round} step ${step} loss ${loss.toFixed(4)}`),
      });
      console.log(JSON.stringify({ clientId: r.clientId, steps: r.losses.length, train_loss_final: r.losses[r.losses.length - 1], eval: r.eval }));
    });
  program
    .command('run')
    .description('Launch a whole federated experiment (server + clients on loopback) from one YAML file')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm run (the experiment launcher)', 'issue #6 (federation); meanwhile start `flglm server` and `flglm client` by hand');
    });
}
