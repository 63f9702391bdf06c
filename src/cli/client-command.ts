import type { Command } from 'commander';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClientMetrics } from '../client/client-metrics.js';
import { linkFromEnv } from '../client/netem.js';
import { SplitClient } from '../client/split-client.js';
import { readSilo } from '../data/examples.js';
import { peakRssMib, type ClientSummary } from '../launcher/summaries.js';
import { Capture } from '../privacy/capture.js';
import { readKitServer, withDefaultPort } from '../security/kit-server.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { startMetricsEndpoint } from '../util/metrics-endpoint.js';
import { checkSecurityOptions, LOG_FORMAT_HELP, type ClientCliOptions } from './federation-options.js';
import { intOption, numberOption, portOption } from './options.js';

/** `flglm client`: head and tail on a local silo, talking to a server. */
export function registerClientCommand(program: Command): void {
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
    .option(
      '--checkpoints <dir>',
      "save this client's parts here every federation.checkpoint_every_rounds rounds and after the last",
    )
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
    .option('--timeline <file>', "append each training step's phases as JSON lines (the dashboard's timeline)")
    .option('--log-format <format>', LOG_FORMAT_HELP, 'pretty')
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
    .action((_o: unknown, cmd: Command) => runClientCommand(cmd.opts<ClientCliOptions>()));
}

async function runClientCommand(o: ClientCliOptions): Promise<void> {
  const log = checkSecurityOptions(o, 'client');
  const kitServer = o.pki && !o.insecure ? readKitServer(o.pki) : null;
  const train = readSilo(o.data);
  const test = o.test ? readSilo(o.test) : train;
  let metrics: ClientMetrics | null = null;
  const capture = o.capture ? new Capture(o.capture, o.captureSteps) : null;
  const client = new SplitClient({
    target: withDefaultPort(o.server ?? kitServer?.address ?? '127.0.0.1:50051'),
    kit: o.insecure ? null : o.pki!,
    serverName: o.serverName ?? kitServer?.server_name ?? 'localhost',
    train,
    test,
    checkpointDir: o.checkpoints ? join(o.checkpoints) : null,
    log,
    onStep: (round, step, loss) => {
      metrics?.step(loss);
      log(`round ${round} step ${step} loss ${loss.toFixed(4)}`, { event: 'step', round, step, loss });
    },
    reconnectAttempts: o.reconnect,
    // One line per step, one write (O_APPEND): processes appending to one file do not interleave lines.
    onTimeline: o.timeline
      ? (r) => {
          const end = Math.max(...Object.values(r.spans).map(([, e]) => e));
          appendFileSync(o.timeline!, JSON.stringify({ type: 'timeline', ...r, end }) + '\n');
        }
      : undefined,
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
}
