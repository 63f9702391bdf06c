import type { Command } from 'commander';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startDashboard, type Dashboard, type DashboardOptions } from '../report/dashboard/server.js';
import { folderSource } from '../report/dashboard/run-source.js';
import { UserError } from '../util/errors.js';
import { portOption } from './options.js';

/** The server kit's certificate and key, for a dashboard bound beyond loopback. */
export function dashboardTls(kit: string | undefined): DashboardOptions['tls'] {
  if (!kit) return undefined;
  return { cert: readFileSync(join(kit, 'server.crt')), key: readFileSync(join(kit, 'server.key')) };
}

/** Start a dashboard and say where it is (with its token when it has one). */
export async function announceDashboard(o: DashboardOptions): Promise<Dashboard> {
  const d = await startDashboard(o);
  console.error(`flglm dashboard: ${d.url}`);
  return d;
}

/** The newest run folder under `base` (one with a metrics.jsonl). */
function newestRun(base: string): string {
  const runs = existsSync(base)
    ? readdirSync(base)
        .map((n) => join(base, n))
        .filter((d) => existsSync(join(d, 'metrics.jsonl')))
    : [];
  if (!runs.length) throw new UserError(`no run folder under ${base}/. Fix: give one: flglm dashboard runs/<run>`);
  return runs.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

/** `flglm dashboard [RUN_DIR]`: the live page of a running or finished run folder. */
export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard [run-dir]')
    .description('Serve a live web page of a run folder (running or finished): state, curves, step timeline, privacy')
    .option('--port <n>', 'port to listen on (0 = any free port)', portOption('--port'), 8470)
    .option('--host <addr>', 'address to bind (beyond loopback only with --pki: TLS and a token)', '127.0.0.1')
    .option('--pki <dir>', "the server's kit (server.crt, server.key): serve over TLS, with a token")
    .action(async (dir: string | undefined, o: { port: number; host: string; pki?: string }) => {
      const runDir = resolve(dir ?? newestRun('runs'));
      const d = await announceDashboard({
        source: folderSource(runDir),
        host: o.host,
        port: o.port,
        tls: dashboardTls(o.pki),
      });
      console.error(`showing ${runDir}; Ctrl-C to stop`);
      await new Promise<void>((done) => {
        const stop = () => void d.close().then(done);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        setInterval(() => {}, 1 << 30); // the server is unref'd: this keeps the process until a signal
      });
      process.exit(0);
    });
}
