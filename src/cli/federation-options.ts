import { Capture } from '../privacy/capture.js';
import { UserError } from '../util/errors.js';
import { createLogger, LOG_FORMATS, type Log, type LogFormat } from '../util/logger.js';
import type { ServeCliOptions } from './serve.js';

/** What `flglm server` and `flglm client` share. */
interface CommonCliOptions {
  pki?: string;
  insecure?: boolean;
  logFormat: string;
  metricsPort?: number;
  summaryJson?: string;
  checkpoints?: string;
  capture?: string;
  captureSteps: number;
}

/** `flglm server`'s options, as commander parses them (`.opts<ServerCliOptions>()`). */
export interface ServerCliOptions extends CommonCliOptions, ServeCliOptions {
  serve?: boolean;
  config?: string;
  set: string[];
  role: string;
  parent?: string;
  serverName?: string;
  expectSubs: number;
  port: number;
  host: string;
  mode?: string;
  resume?: boolean;
  resumeIfPresent?: boolean;
  metrics?: string;
  readyFile?: string;
  revoked?: string;
  healthPort?: number;
  /** The live dashboard's port and address (`--ui-port`, `--ui-host`). */
  uiPort?: number;
  uiHost: string;
  /** TensorBoard event files here (overrides tracking.tensorboard). */
  tensorboard?: string;
}

/** `flglm client`'s options, as commander parses them (`.opts<ClientCliOptions>()`). */
export interface ClientCliOptions extends CommonCliOptions {
  data: string;
  test?: string;
  server?: string;
  serverName?: string;
  metricsHost: string;
  netDelayMs?: number;
  netMbps?: number;
  name?: string;
  reconnect: number;
  /** Append each training step's timeline (JSON lines; `flglm run` passes its metrics.jsonl). */
  timeline?: string;
}

export const LOG_FORMAT_HELP = `${LOG_FORMATS.join(' | ')}: readable lines, or one JSON object per line (for log collectors)`;

/** The security flags checked, and the process's log (the --insecure warning is its first event). */
export function checkSecurityOptions(o: CommonCliOptions, role: string): Log {
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

export const CAPTURE_HELP =
  'PRIVACY: keep the last --capture-steps h_A tensors received from each client in this folder, to measure what an inversion attack recovers (flglm attack invert); off by default, announced in the log when on';

/** The server's `--capture`, announced in its log. */
export function startCapture(o: { capture?: string; captureSteps: number }, log: Log): Capture | null {
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
