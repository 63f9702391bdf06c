import { existsSync, readFileSync } from 'node:fs';
import { JsonLinesTail } from '../util/json-lines.js';
import type { EvalMetrics, RoundRecord, ServerSummary } from '../server/split-server.js';
import { UserError } from '../util/errors.js';

// The launcher contract: what `flglm server` and `flglm client` write for whoever started them
// (`flglm run`, a script, an orchestrator), instead of being reconstructed from their logs.

/** `flglm server --ready-file`: written (atomically) once the server listens. */
export interface ServerReady {
  address: string;
  host: string;
  port: number;
  pid: number;
  mode: string;
  /** The plaintext health endpoint's port (`--health-port`), when there is one. */
  health_port?: number;
  /** The Prometheus endpoint's port (`--metrics-port`), when there is one. */
  metrics_port?: number;
  /** The live dashboard's port (`--ui-port`), when there is one. */
  ui_port?: number;
}

/** `flglm client --summary-json`: what one client did. */
export interface ClientSummary {
  client_id: string;
  steps: number;
  train_loss_final: number;
  losses: number[];
  eval: EvalMetrics | null;
  /** Seconds per phase of a training step, summed over the steps after the first (which compiles the programs). */
  phases: Record<string, number>;
  /** The process's peak resident memory (MiB). */
  peak_rss_mib: number;
}

/**
 * This process's peak resident memory so far, in MiB (worker threads included). On Linux this is
 * VmHWM, the high-water mark of this process's own address space: `getrusage`'s maxrss survives
 * fork + exec, so a child started by a 7 GB parent reported 7 GB whatever it used itself.
 */
export function peakRssMib(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Math.round(Number(hwm[1]) / 1024);
  } catch {
    // not Linux: fall back to getrusage
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

export type { RoundRecord, ServerSummary };
export { JsonLinesTail };

/** A summary another flglm process wrote; a missing or torn file is one clear error. */
export function readSummary<T>(path: string, what: string): T {
  if (!existsSync(path)) throw new UserError(`${what} wrote no summary (${path}); see its log`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new UserError(`${what}'s summary ${path} is not JSON: ${(e as Error).message}`);
  }
}

/** Hand `render` what was appended to `path`, every 500 ms and once more at the end, until `work` settles. */
export async function follow<T>(
  path: string,
  render: (records: Record<string, unknown>[]) => void,
  work: Promise<T>,
): Promise<T> {
  const tail = new JsonLinesTail(path);
  const timer = setInterval(() => render(tail.poll()), 500);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    render(tail.poll());
  }
}
