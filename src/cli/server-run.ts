import { appendFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { configToYaml, loadConfigFile } from '../config/load.js';
import { TensorBoardSink } from '../report/tensorboard.js';
import { preflight } from '../config/preflight.js';
import { peakRssMib, type ServerReady } from '../launcher/summaries.js';
import { checkedServerKit } from '../security/tls.js';
import { ServerHealth, startHealthEndpoint } from '../server/health.js';
import { modesWith, modeTraits, SERVER_MODES, type ServerMode } from '../server/modes/lookup.js';
import { ServerMetrics } from '../server/server-metrics.js';
import { SplitServer } from '../server/split-server.js';
import { startTransport } from '../server/transport.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/logger.js';
import { startMetricsEndpoint } from '../util/metrics-endpoint.js';
import { startCapture, type ServerCliOptions } from './federation-options.js';
import { isLoopback, type Dashboard } from '../report/dashboard/server.js';
import { LiveSource } from '../report/dashboard/run-source.js';
import { announceDashboard, dashboardTls } from './dashboard-command.js';

/** The parent server: checks everything checkable, trains the federation, writes its summary. */
export async function runParentServer(o: ServerCliOptions, log: Log): Promise<void> {
  if (!o.config) throw new UserError('--config is required for the parent server');
  const cfg = loadConfigFile(o.config, o.set);
  preflight(cfg, { data: false, federated: true });
  if (o.insecure && cfg.security.tls)
    throw new UserError(
      `--insecure contradicts ${o.config}, which has security.tls: true. Fix: give --pki, or set security.tls: false for a plaintext loopback test`,
    );
  const mode = (o.mode ?? cfg.federation.mode) as ServerMode;
  if (!SERVER_MODES.includes(mode)) throw new UserError(`--mode: expected ${SERVER_MODES.join('|')}, got "${mode}"`);
  const kit = o.insecure ? null : o.pki!;
  let prometheus: ServerMetrics | null = null;
  const ui = o.uiPort !== undefined ? new LiveSource(cfg) : null;
  const tbDir = o.tensorboard ? resolve(o.tensorboard) : cfg.tracking.tensorboard;
  const tensorboard = tbDir ? new TensorBoardSink(tbDir, (m) => log(m, { event: 'warning' })) : null;
  tensorboard?.config(configToYaml(cfg));
  const onMetric =
    o.metrics || o.metricsPort !== undefined || ui || tensorboard
      ? (r: Record<string, unknown>) => {
          if (o.metrics) appendFileSync(o.metrics, JSON.stringify(r) + '\n');
          prometheus?.record(r);
          ui?.push(r);
          tensorboard?.record(r);
        }
      : undefined;
  if (o.expectSubs > 0 && !modeTraits(mode).subServers)
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
    expectSubServers: o.expectSubs,
    revocation,
    capture,
  });
  let transport: Awaited<ReturnType<typeof startTransport>>;
  const health = new ServerHealth();
  let healthEndpoint: Awaited<ReturnType<typeof startHealthEndpoint>> | null = null;
  let metricsEndpoint: Awaited<ReturnType<typeof startMetricsEndpoint>> | null = null;
  let dashboard: Dashboard | null = null;
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
    if (ui)
      dashboard = await announceDashboard({
        source: ui,
        host: o.uiHost,
        port: o.uiPort!,
        tls: isLoopback(o.uiHost) ? undefined : dashboardTls(kit ?? undefined),
        what: '--ui-port',
      });
  } catch (e) {
    await server.close(); // live worker threads would keep the failed process alive
    await dashboard?.close();
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
      ...(dashboard ? { ui_port: dashboard.port } : {}),
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
    if (ui) ui.state = 'finished';
    tensorboard?.close();
    await dashboard?.close();
    await healthEndpoint?.close();
    await metricsEndpoint?.close();
    await transport.close();
  }
}
