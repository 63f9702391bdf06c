import type { Command } from 'commander';
import { runSubServer } from '../server/sub-server.js';
import { readKitServer, withDefaultPort } from '../security/kit-server.js';
import { SERVER_MODES } from '../server/modes/lookup.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/logger.js';
import { CAPTURE_HELP, checkSecurityOptions, LOG_FORMAT_HELP, type ServerCliOptions } from './federation-options.js';
import { collect, intOption, portOption, SET_HELP } from './options.js';
import { addServeOptions, serveTrunk } from './serve.js';
import { runParentServer } from './server-run.js';

/** `flglm server`: the parent (training, then maybe serving), a sub-server, or serving a trained trunk. */
export function registerServerCommand(program: Command): void {
  const server = program
    .command('server')
    .description('Run the split-learning server (trunk) in one of the server modes')
    .option('--config <file>', 'experiment YAML (the server is the source of truth for the plan)')
    .option(
      '--role <role>',
      'parent (the server clients talk to) or sub (hosts a trunk replica for a hierarchical parent)',
      'parent',
    )
    .option('--parent <host:port>', "with --role sub: the parent server to attach to (default: the kit's server.json)")
    .option(
      '--server-name <dns>',
      "with --role sub: name on the parent's certificate (default: the kit's server.json, else localhost)",
    )
    .option(
      '--expect-subs <n>',
      'hierarchical parent: wait for this many sub-servers before training',
      intOption('--expect-subs', 0),
      0,
    )
    .option('--pki <dir>', 'server startup kit made by flglm keygen (e.g. ./pki/server)')
    .option('--port <n>', 'port to listen on (0 = any free port)', portOption('--port'), 50051)
    .option('--host <addr>', 'address to bind', '127.0.0.1')
    .option('--mode <mode>', `${SERVER_MODES.join(' | ')} (overrides federation.mode)`)
    .option('--set <key=value>', SET_HELP, collect, [])
    .option(
      '--checkpoints <dir>',
      'write round checkpoints (trunk, its optimizer, global client parts) here every federation.checkpoint_every_rounds rounds and after the last',
    )
    .option('--resume', 'continue from the last completed round in --checkpoints')
    .option(
      '--resume-if-present',
      'continue from --checkpoints when they hold a round checkpoint, else start fresh (a restarted pod or service)',
    )
    .option('--metrics <file>', 'append per-step and per-round metrics (JSON lines)')
    .option('--summary-json <path>', 'write the server summary as JSON at the end')
    .option(
      '--ready-file <path>',
      'once listening, write {address, host, port, pid, mode} here as JSON (for launchers)',
    )
    .option(
      '--revoked <file>',
      'revocation list to enforce (default: <pki>/revoked.json; `flglm keygen revoke` writes pki/server/revoked.json)',
    )
    .option(
      '--metrics-port <n>',
      'serve Prometheus metrics at http://HOST:N/metrics (0 = any free port; the ready file says which)',
      portOption('--metrics-port'),
    )
    .option('--log-format <format>', LOG_FORMAT_HELP, 'pretty')
    .option(
      '--health-port <n>',
      'also serve the gRPC health service (grpc.health.v1) in plaintext on this port, for probes (0 = any free port)',
      portOption('--health-port'),
    )
    .option(
      '--ui-port <n>',
      'serve the live dashboard (flglm dashboard) of this federation on this port (0 = any free port)',
      portOption('--ui-port'),
    )
    .option(
      '--ui-host <addr>',
      'address for --ui-port (beyond loopback: over TLS with the kit, and a token)',
      '127.0.0.1',
    )
    .option('--tensorboard <dir>', 'write TensorBoard event files here, one run per participant (tracking.tensorboard)')
    .option('--capture <dir>', CAPTURE_HELP)
    .option(
      '--capture-steps <n>',
      'with --capture: how many of the last training steps per client to keep',
      intOption('--capture-steps', 1),
      4,
    )
    .option('--insecure', 'plaintext, for loopback tests only');
  addServeOptions(server).action(async (_o: unknown, cmd: Command) => {
    const o = cmd.opts<ServerCliOptions>();
    if (o.role !== 'parent' && o.role !== 'sub') throw new UserError(`--role: expected parent|sub, got "${o.role}"`);
    const log = checkSecurityOptions(o, o.role === 'sub' ? 'sub-server' : 'server');
    if (o.role === 'sub') return subServer(o, log);
    if (o.from && !o.serve) throw new UserError('--from serves a trained trunk: add --serve');
    if (o.from) return serveTrunk(o, log, o.from);
    if (o.serve && !o.checkpoints)
      throw new UserError('--serve after training serves the last round checkpoint: give --checkpoints DIR');
    await runParentServer(o, log);
    if (o.serve) await serveTrunk(o, log, o.checkpoints!);
  });
}

/** `--role sub`: host one trunk replica for a hierarchical parent until it finishes. */
async function subServer(o: ServerCliOptions, log: Log): Promise<void> {
  const kitServer = o.pki && !o.insecure ? readKitServer(o.pki) : null;
  const parent = o.parent ?? kitServer?.address;
  if (!parent)
    throw new UserError(
      '--role sub needs --parent HOST:PORT (the hierarchical server to attach to), or a kit whose server.json names it',
    );
  console.log(`flglm sub-server attaching to ${withDefaultPort(parent)}`);
  await runSubServer({
    parent: withDefaultPort(parent),
    kit: o.insecure ? null : o.pki!,
    serverName: o.serverName ?? kitServer?.server_name ?? 'localhost',
    log,
  });
  console.log('parent finished; sub-server exiting');
}
