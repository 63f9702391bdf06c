import { join } from 'node:path';
import { parseConfigText } from '../../src/config/load.js';
import type { ExperimentConfig } from '../../src/config/schema.js';
import { startTransport } from '../../src/server/transport.js';
import { SplitServer, type ServerMode } from '../../src/server/split-server.js';
import { runClient, type ClientResult } from '../../src/client/split-client.js';
import { resolveData, type ExperimentData } from '../../src/config/experiment.js';
import type { ClientMessage } from '../../src/protocol/messages.js';
import type { ModePlugin } from '../../src/server/modes/mode.js';

export function config(yaml: string): ExperimentConfig {
  const r = parseConfigText(yaml);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

/** A small classification run on the tiny model (no clipping), the base most federation tests vary. */
export const TINY_RUN = `
seed: 3
model: {preset: tiny, max_seq_len: 64}
optimizer: {lr: 0.003, grad_clip: 0}
schedule: {warmup_steps: 2}
data: {task: classify, batch_size: 4, seq_len: 48, max_examples: 40}
eval: {max_batches: 3}
`;

export const CLIENT_IDS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

/** A real server (replicas in worker threads) and real clients, all over gRPC on 127.0.0.1. */
export async function federate(
  cfg: ExperimentConfig,
  opts: {
    kitRoot?: string | null;
    mode?: ServerMode;
    runner?: ModePlugin;
    audit?: (clientId: string, message: ClientMessage) => void;
    onMetric?: (r: Record<string, unknown>) => void;
    /** Each client step's phases (the dashboard's timeline records). */
    onTimeline?: (r: { client: string; round: number; step: number; spans: Record<string, [number, number]> }) => void;
    /** The data `resolveData(cfg)` gives, when a test has it already (reading the corpus takes seconds). */
    data?: ExperimentData;
  } = {},
) {
  const data = opts.data ?? resolveData(cfg);
  const kit = opts.kitRoot ? join(opts.kitRoot, 'server') : null;
  const server = new SplitServer({
    cfg,
    kit,
    mode: opts.mode,
    runner: opts.runner,
    onReceive: opts.audit,
    onMetric: opts.onMetric,
  });
  await server.init();
  const transport = await startTransport({ kit, port: 0, onSession: server.onSession });
  try {
    const ids = CLIENT_IDS.slice(0, cfg.federation.clients);
    const results: ClientResult[] = await Promise.all(
      ids.map((id, i) =>
        runClient({
          target: `127.0.0.1:${transport.port}`,
          kit: opts.kitRoot ? join(opts.kitRoot, 'clients', id) : null,
          serverName: 'localhost',
          train: data.silos[i],
          test: data.test,
          reconnectAttempts: 0,
          insecureName: id,
          onTimeline: opts.onTimeline,
        }),
      ),
    );
    const summary = await server.done;
    return { results, summary, data };
  } finally {
    await transport.close();
    await server.close();
  }
}
