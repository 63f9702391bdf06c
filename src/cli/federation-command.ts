import type { Command } from 'commander';
import { join } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { readSilo } from '../data/examples.js';
import { startTransport } from '../server/transport.js';
import { ServerHealth, startHealthEndpoint } from '../server/health.js';
import { ServerMetrics } from '../server/server-metrics.js';
import { startMetricsEndpoint } from '../util/metrics-endpoint.js';
import { createLogger, LOG_FORMATS, type Log, type LogFormat } from '../util/logger.js';
import { SplitServer } from '../server/split-server.js';
import { SplitClient } from '../client/split-client.js';
import { ClientMetrics } from '../client/client-metrics.js';
import { UserError } from '../util/errors.js';
import { collect, intOption, numberOption, portOption, SET_HELP } from './options.js';
import { appendFileSync, existsSync } from 'node:fs';
import { runSubServer } from '../server/sub-server.js';
import { linkFromEnv } from '../client/netem.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { modeTraits, modesWith, SERVER_MODES } from '../server/modes/lookup.js';
import { checkedServerKit } from '../security/tls.js';
import type { ServerMode } from '../server/split-server.js';
import { peakRssMib, type ClientSummary, type ServerReady } from '../launcher/summaries.js';
import { readKitServer, withDefaultPort } from '../security/kit-server.js';
import { preflight } from '../config/preflight.js';
import { Capture } from '../privacy/capture.js';
import { addServeOptions, serveTrunk, type ServeCliOptions } from './serve.js';

/** Exactly one of --pki and --insecure; --insecure is loud. */
/** The security flags checked, and the process's log (the --insecure warning is its first event). */
function checkSecurityOptions(o: { pki?: string; insecure?: boolean; logFormat: string }, role: string): Log {
  const log = createLogger(role, logFormat(o.logFormat));
  if (o.pki && o.insecure)
    throw new UserError(
      '--insecure and --pki contradict each other: --insecure would ignore the kit. Fix: drop --insecure',
    );
  if (!o.pki && !o.insecure)
    throw new UserError('--pki is required (a kit from flglm keygen); for loopback tests only, pass --insecure');
  if (o.insecure)
    log(
      'WARNING: --insecure: no TLS and no payload encryption. Activations travel in the clear; use only on loopback for tests.',
      { event: 'insecure' },
    );
  return log;
}

export function registerFederationCommands(program: Command): void {
  const server = program
    .command('server')
    .description('Run the split-learning server (trunk) in sequential, batch or hierarchical mode')
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
    .option('--checkpoints <dir>', 'checkpoint the trunk and global client parts here at every round end')
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
    .option(
      '--log-format <format>',
      `${LOG_FORMATS.join(' | ')}: readable lines, or one JSON object per line (for log collectors)`,
      'pretty',
    )
    .option(
      '--health-port <n>',
      'also serve the gRPC health service (grpc.health.v1) in plaintext on this port, for probes (0 = any free port)',
      portOption('--health-port'),
    )
    .option('--capture <dir>', CAPTURE_HELP)
    .option(
      '--capture-steps <n>',
      'with --capture: how many of the last training steps per client to keep',
      intOption('--capture-steps', 1),
      4,
    )
    .option('--insecure', 'plaintext, for loopback tests only');
  addServeOptions(server).action(
    async (
      o: ServeCliOptions & {
        serve?: boolean;
        capture?: string;
        captureSteps: number;
        logFormat: string;
        metricsPort?: number;
        healthPort?: number;
        set: string[];
        role: string;
        parent?: string;
        serverName?: string;
        expectSubs: number;
        config?: string;
        pki?: string;
        port: number;
        host: string;
        mode?: string;
        checkpoints?: string;
        resume?: boolean;
        resumeIfPresent?: boolean;
        metrics?: string;
        summaryJson?: string;
        readyFile?: string;
        revoked?: string;
        insecure?: boolean;
      },
    ) => {
      if (o.role !== 'parent' && o.role !== 'sub') throw new UserError(`--role: expected parent|sub, got "${o.role}"`);
      const log = checkSecurityOptions(o, o.role === 'sub' ? 'sub-server' : 'server');
      if (o.role === 'sub') {
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
        return;
      }
      if (o.from && !o.serve) throw new UserError('--from serves a trained trunk: add --serve');
      if (o.from) return serveTrunk(o, log, o.from);
      if (o.serve && !o.checkpoints)
        throw new UserError('--serve after training serves the last round checkpoint: give --checkpoints DIR');
      if (!o.config) throw new UserError('--config is required for the parent server');
      const cfg = loadConfigFile(o.config, o.set);
      preflight(cfg, { data: false });
      if (o.insecure && cfg.security.tls)
        throw new UserError(
          `--insecure contradicts ${o.config}, which has security.tls: true. Fix: give --pki, or set security.tls: false for a plaintext loopback test`,
        );
      const mode = (o.mode ?? cfg.federation.mode) as ServerMode;
      if (!SERVER_MODES.includes(mode))
        throw new UserError(`--mode: expected ${SERVER_MODES.join('|')}, got "${mode}"`);
      const kit = o.insecure ? null : o.pki!;
      let prometheus: ServerMetrics | null = null;
      const onMetric =
        o.metrics || o.metricsPort !== undefined
          ? (r: Record<string, unknown>) => {
              if (o.metrics) appendFileSync(o.metrics, JSON.stringify(r) + '\n');
              prometheus?.record(r);
            }
          : undefined;
      const expectSubServers = o.expectSubs;
      if (expectSubServers > 0 && !modeTraits(mode).subServers)
        throw new UserError(`--expect-subs needs --mode ${modesWith('subServers').join(' or ')}`);
      // Everything checkable is checked before the trunk workers start: certificates, key
      // permissions, the revocation list (fails closed).
      const revocation = checkedServerKit(kit, o.revoked);
      if (o.resumeIfPresent && !o.checkpoints)
        throw new UserError('--resume-if-present needs --checkpoints DIR (where the round checkpoints are)');
      const resume = o.resume || (o.resumeIfPresent && existsSync(join(o.checkpoints!, 'latest', 'checkpoint.json')));
      if (o.resumeIfPresent)
        log(resume ? `resuming from ${o.checkpoints}` : `no checkpoint in ${o.checkpoints}: starting fresh`, {
          event: 'start',
          resume: Boolean(resume),
        });
      const capture = startCapture(o, log);
      const server = new SplitServer({
        cfg,
        kit,
        mode,
        checkpointDir: o.checkpoints ?? null,
        resume,
        log,
        onMetric,
        expectSubServers,
        revocation,
        capture,
      });
      let transport: Awaited<ReturnType<typeof startTransport>>;
      const health = new ServerHealth();
      let healthEndpoint: Awaited<ReturnType<typeof startHealthEndpoint>> | null = null;
      let metricsEndpoint: Awaited<ReturnType<typeof startMetricsEndpoint>> | null = null;
      try {
        await server.init();
        transport = await startTransport({
          kit,
          host: o.host,
          port: o.port,
          onSession: server.onSession,
          onSubServer: server.onSubServer,
          log,
          revocation,
          maxMessageBytes: server.limits.maxMessageBytes,
          health,
        });
        if (o.healthPort !== undefined) healthEndpoint = await startHealthEndpoint(health, o.host, o.healthPort);
        if (o.metricsPort !== undefined) {
          prometheus = new ServerMetrics(() => server.connection());
          metricsEndpoint = await startMetricsEndpoint(prometheus.registry, o.host, o.metricsPort);
        }
      } catch (e) {
        await server.close(); // live worker threads would keep the failed process alive
        throw e;
      }
      health.set('SERVING');
      if (o.readyFile) {
        const ready: ServerReady = {
          address: `${o.host}:${transport.port}`,
          host: o.host,
          port: transport.port,
          pid: process.pid,
          mode,
          ...(healthEndpoint ? { health_port: healthEndpoint.port } : {}),
          ...(metricsEndpoint ? { metrics_port: metricsEndpoint.port } : {}),
        };
        writeFileAtomic(o.readyFile, JSON.stringify(ready));
      }
      console.log(
        `flglm server (${mode}) listening on ${o.host}:${transport.port}, waiting for ${cfg.federation.clients} clients`,
      );
      const stop = () => {
        void transport.close().then(() => process.exit(130));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const summary = await server.done;
        capture?.flush('server');
        if (o.summaryJson)
          writeFileAtomic(o.summaryJson, JSON.stringify({ ...summary, peak_rss_mib: peakRssMib() }, null, 2));
        console.log(
          `training finished: ${summary.rounds} rounds in ${summary.history.reduce((a, r) => a + r.wall_s, 0).toFixed(1)} s`,
        );
      } finally {
        health.set('NOT_SERVING');
        await healthEndpoint?.close();
        await metricsEndpoint?.close();
        await transport.close();
      }
      if (o.serve) await serveTrunk(o, log, o.checkpoints!);
    },
  );
  program
    .command('client')
    .description('Run a client: head and tail on a local data silo, talking to a server')
    .requiredOption('--data <dir>', "this client's silo: a folder of .jsonl/.txt examples")
    .option('--test <dir>', 'held-out folder for the final evaluation (default: the silo itself)')
    .option(
      '--pki <dir>',
      "this client's startup kit made by flglm keygen (e.g. ./pki/clients/alice); it names the server to dial",
    )
    .option(
      '--server <host:port>',
      "server address (default: the kit's server.json, else 127.0.0.1:50051; a host alone means port 50051)",
    )
    .option('--server-name <dns>', "name on the server certificate (default: the kit's server.json, else localhost)")
    .option('--summary-json <path>', "write this client's summary as JSON at the end (for launchers)")
    .option('--checkpoints <dir>', "save this client's parts here after every round")
    .option(
      '--net-delay-ms <ms>',
      'simulate a WAN link: round-trip time added to every message (benchmarks)',
      numberOption('--net-delay-ms', 0),
    )
    .option('--net-mbps <n>', 'simulate a WAN link: bandwidth in Mbit/s (benchmarks)', numberOption('--net-mbps', 1e-3))
    .option('--name <id>', 'client name in --insecure mode (with TLS the id comes from the certificate)')
    .option(
      '--metrics-port <n>',
      'serve Prometheus metrics at http://METRICS_HOST:N/metrics (0 = any free port)',
      portOption('--metrics-port'),
    )
    .option('--metrics-host <addr>', 'address for --metrics-port', '127.0.0.1')
    .option(
      '--log-format <format>',
      `${LOG_FORMATS.join(' | ')}: readable lines, or one JSON object per line (for log collectors)`,
      'pretty',
    )
    .option(
      '--reconnect <n>',
      'reconnection attempts (1 s apart) after the server goes away',
      intOption('--reconnect', 0),
      30,
    )
    .option(
      '--capture <dir>',
      'keep the token ids of the last --capture-steps steps here (this machine only): the truth to score `flglm attack invert` against',
    )
    .option(
      '--capture-steps <n>',
      'with --capture: how many of the last training steps to keep',
      intOption('--capture-steps', 1),
      4,
    )
    .option('--insecure', 'plaintext, for loopback tests only')
    .action(
      async (o: {
        capture?: string;
        captureSteps: number;
        logFormat: string;
        metricsPort?: number;
        metricsHost: string;
        netDelayMs?: number;
        netMbps?: number;
        name?: string;
        reconnect: number;
        data: string;
        test?: string;
        server?: string;
        pki?: string;
        serverName?: string;
        summaryJson?: string;
        checkpoints?: string;
        insecure?: boolean;
      }) => {
        const log = checkSecurityOptions(o, 'client');
        const kitServer = o.pki && !o.insecure ? readKitServer(o.pki) : null;
        const target = withDefaultPort(o.server ?? kitServer?.address ?? '127.0.0.1:50051');
        const serverName = o.serverName ?? kitServer?.server_name ?? 'localhost';
        const train = readSilo(o.data);
        const test = o.test ? readSilo(o.test) : train;
        let metrics: ClientMetrics | null = null;
        const capture = o.capture ? new Capture(o.capture, o.captureSteps) : null;
        const client = new SplitClient({
          target,
          kit: o.insecure ? null : o.pki!,
          serverName,
          train,
          test,
          checkpointDir: o.checkpoints ? join(o.checkpoints) : null,
          log,
          onStep: (round, step, loss) => {
            metrics?.step(loss);
            log(`round ${round} step ${step} loss ${loss.toFixed(4)}`, { event: 'step', round, step, loss });
          },
          reconnectAttempts: o.reconnect,
          insecureName: o.name,
          capture,
          link: linkFromEnv({
            FLGLM_NET_DELAY_MS: o.netDelayMs?.toString() ?? process.env.FLGLM_NET_DELAY_MS,
            FLGLM_NET_MBPS: o.netMbps?.toString() ?? process.env.FLGLM_NET_MBPS,
          }),
        });
        let endpoint: Awaited<ReturnType<typeof startMetricsEndpoint>> | null = null;
        if (o.metricsPort !== undefined) {
          metrics = new ClientMetrics(client.phases);
          endpoint = await startMetricsEndpoint(metrics.registry, o.metricsHost, o.metricsPort);
          log(`metrics at http://${o.metricsHost}:${endpoint.port}/metrics`, { event: 'metrics', port: endpoint.port });
        }
        const r = await client.run().finally(() => endpoint?.close());
        capture?.flush('clients');
        const summary: ClientSummary = {
          client_id: r.clientId,
          steps: r.losses.length,
          train_loss_final: r.losses[r.losses.length - 1],
          losses: r.losses,
          eval: r.eval,
          phases: r.phases,
          peak_rss_mib: peakRssMib(),
        };
        if (o.summaryJson) writeFileAtomic(o.summaryJson, JSON.stringify(summary, null, 2));
        console.log(
          JSON.stringify({
            clientId: r.clientId,
            steps: r.losses.length,
            train_loss_final: summary.train_loss_final,
            eval: r.eval,
          }),
        );
      },
    );
}

const CAPTURE_HELP =
  'PRIVACY: keep the last --capture-steps h_A tensors received from each client in this folder, to measure what an inversion attack recovers (flglm attack invert); off by default, announced in the log when on';

function startCapture(o: { capture?: string; captureSteps: number }, log: Log): Capture | null {
  if (!o.capture) return null;
  log(
    `PRIVACY WARNING: --capture keeps clients' activations in ${o.capture} (the last ${o.captureSteps} steps of each), for measuring inversion attacks only`,
    { event: 'capture', dir: o.capture },
  );
  return new Capture(o.capture, o.captureSteps);
}

function logFormat(v: string): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(v))
    throw new UserError(`--log-format: expected ${LOG_FORMATS.join('|')}, got "${v}"`);
  return v as LogFormat;
}
