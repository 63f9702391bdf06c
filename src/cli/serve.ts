import { startTransport } from '../server/transport.js';
import { ServerHealth } from '../server/health.js';
import { TrunkServer, DEFAULT_SERVE_LIMITS, type ServeLimits } from '../server/serving/trunk-serving.js';
import { trunkFromRun } from '../server/serving/trunk-source.js';
import { checkedServerKit } from '../security/tls.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { Log } from '../util/logger.js';
import { intOption } from './options.js';
import type { Command } from 'commander';

/** `flglm server --serve` options (split inference). */
export function addServeOptions(cmd: Command): Command {
  return cmd
    .option(
      '--serve',
      'after training (or with --from, instead of it) serve the trunk for split generation: flglm generate --server',
    )
    .option(
      '--from <dir>',
      'with --serve: a run folder (flglm run) or --checkpoints folder to serve the trunk of, without training',
    )
    .option(
      '--max-sessions <n>',
      'with --serve: generation sessions open at once',
      intOption('--max-sessions', 1),
      DEFAULT_SERVE_LIMITS.maxSessions,
    )
    .option(
      '--max-rows <n>',
      "with --serve: sequences of all sessions together (rows of the trunk's KV cache)",
      intOption('--max-rows', 1),
      DEFAULT_SERVE_LIMITS.maxRows,
    )
    .option(
      '--cache-len <n>',
      'with --serve: positions per sequence (prompt + new tokens)',
      intOption('--cache-len', 2),
      DEFAULT_SERVE_LIMITS.cacheLen,
    )
    .option(
      '--idle-timeout-ms <ms>',
      'with --serve: evict a session silent this long (its cache is freed)',
      intOption('--idle-timeout-ms', 100),
      DEFAULT_SERVE_LIMITS.idleTimeoutMs,
    )
    .option(
      '--batch-window-ms <ms>',
      "with --serve: how long a decode step waits to batch with other sessions'",
      intOption('--batch-window-ms', 0),
      DEFAULT_SERVE_LIMITS.batchWindowMs,
    );
}

export interface ServeCliOptions {
  from?: string;
  config?: string;
  checkpoints?: string;
  pki?: string;
  insecure?: boolean;
  host: string;
  port: number;
  revoked?: string;
  readyFile?: string;
  maxSessions: number;
  maxRows: number;
  cacheLen: number;
  idleTimeoutMs: number;
  batchWindowMs: number;
}

/** Serve the trunk of a run (or of this server's own checkpoints after training) until interrupted. */
export async function serveTrunk(o: ServeCliOptions, log: Log, source: string): Promise<void> {
  const { cfg, model, params } = trunkFromRun(source, o.config);
  const kit = o.insecure ? null : (o.pki ?? null);
  const revocation = checkedServerKit(kit, o.revoked);
  const limits: ServeLimits = {
    maxSessions: o.maxSessions,
    maxRows: o.maxRows,
    cacheLen: o.cacheLen,
    idleTimeoutMs: o.idleTimeoutMs,
    batchWindowMs: o.batchWindowMs,
  };
  const trunk = await TrunkServer.start({ cfg, model, params, kit, revocation, limits, log });
  const health = new ServerHealth();
  let transport;
  try {
    transport = await startTransport({
      kit,
      host: o.host,
      port: o.port,
      revocation,
      onGenerate: trunk.onGenerate,
      health,
      log,
      maxMessageBytes: trunk.maxMessageBytes,
    });
  } catch (e) {
    await trunk.close(); // a live worker would keep the failed process alive
    throw e;
  }
  health.set('SERVING');
  if (o.readyFile)
    writeFileAtomic(
      o.readyFile,
      JSON.stringify({
        address: `${o.host}:${transport.port}`,
        host: o.host,
        port: transport.port,
        pid: process.pid,
        mode: 'serve',
      }),
    );
  console.log(
    `flglm server serving split generation on ${o.host}:${transport.port} (trunk of ${source}; ${limits.maxSessions} sessions, ${limits.maxRows} sequences of ${limits.cacheLen} positions, cache ${(trunk.cacheBytes / 2 ** 20).toFixed(0)} MiB)`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  health.set('NOT_SERVING');
  await transport.close();
  await trunk.close();
}
