import { pino } from 'pino';

/** Fields of a log event: round, step, client id and the like (never keys, payloads or tensor values). */
export type LogFields = Record<string, string | number | boolean | null | undefined>;
export type Log = (msg: string, fields?: LogFields) => void;
export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * A process's log on stderr: `pretty` is one readable line per event (`[server] round 3/52: ...`),
 * `json` one JSON object per line (pino: level, time, role, msg and the event's fields) for log
 * collectors. Both carry the same events; launchers read the pretty form's error lines.
 */
export function createLogger(role: string, format: LogFormat = 'pretty'): Log {
  if (format === 'pretty') return (msg) => console.error(`[${role}] ${msg}`);
  const logger = pino(
    { base: { role, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 2, sync: true }),
  );
  return (msg, fields) => logger.info(fields ?? {}, msg);
}
