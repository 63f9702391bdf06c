import { join } from 'node:path';
import { connect, type ClientConnection } from '../../src/client/transport.js';
import { runClient } from '../../src/client/split-client.js';
import { resolveData, type ExperimentData } from '../../src/config/experiment.js';
import { Inbox } from '../../src/protocol/inbox.js';
import type { ExperimentConfig } from '../../src/config/schema.js';
import { SplitServer } from '../../src/server/split-server.js';
import { startTransport, type TransportOptions } from '../../src/server/transport.js';
import {
  PROTOCOL_VERSION,
  type ClientMessageOut,
  type ClientSessionCall,
  type ServerMessage,
} from '../../src/protocol/messages.js';

/** Anything a hostile client may write: well-typed messages, or fields of the wrong type. */
export type Msg = ClientMessageOut | Record<string, unknown>;

/**
 * A real server on 127.0.0.1 (trunk in worker threads) for a hostile client to attack, torn down by
 * `stop`; `honest(name, silo)` runs a real client beside it. With `kitRoot` (a `keygen` folder) the
 * transport is mutual TLS and clients use their kits (`pki/clients/<name>`).
 */
export async function hostileFederation(
  cfg: ExperimentConfig,
  opts: { checkpointDir?: string; kitRoot?: string; data?: ExperimentData; transport?: Partial<TransportOptions> } = {},
) {
  const logs: string[] = [];
  const events: Record<string, unknown>[] = [];
  const data = opts.data ?? resolveData(cfg);
  const kit = opts.kitRoot ? join(opts.kitRoot, 'server') : null;
  const server = new SplitServer({
    cfg,
    kit,
    log: (m) => logs.push(m),
    onMetric: (r) => events.push(r),
    checkpointDir: opts.checkpointDir ?? null,
  });
  await server.init();
  const transport = await startTransport({
    kit,
    port: 0,
    onSession: server.onSession,
    maxMessageBytes: server.limits.maxMessageBytes,
    log: (m) => logs.push(m),
    ...opts.transport,
  });
  const target = `127.0.0.1:${transport.port}`;
  const honest = (name = 'honest', silo = 0) =>
    runClient({
      target,
      kit: opts.kitRoot ? join(opts.kitRoot, 'clients', name) : null,
      serverName: 'localhost',
      train: data.silos[silo],
      test: data.test,
      insecureName: name,
      reconnectAttempts: 0,
    });
  const stop = async () => {
    await transport.close();
    await server.close();
  };
  return { server, target, honest, logs, events, stop, data, transport };
}

/** A wire tensor as a hostile client would write it (plaintext: the tests run payload encryption off). */
export function wireTensor(name: string, shape: number[], fill = 0, dtype = 'float32', bytes?: number) {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Buffer.alloc(bytes ?? n * 4);
  if (fill !== 0 && dtype === 'float32') for (let i = 0; i + 4 <= data.length; i += 4) data.writeFloatLE(fill, i);
  return { name, dtype, shape, data, counter: 0, tag: Buffer.alloc(0), encrypted: false };
}

/**
 * A client speaking protos/flglm.proto by hand, with no flglm client logic: it sends whatever the
 * test tells it to. Plaintext (`kit: null`) or mutual TLS with a real kit.
 */
export class RawClient {
  readonly conn: ClientConnection;
  readonly call: ClientSessionCall;
  readonly inbox = new Inbox<ServerMessage>();
  plan: ExperimentConfig | null = null;

  constructor(
    target: string,
    readonly name: string,
    kit: string | null = null,
  ) {
    this.conn = connect(target, kit, 'localhost');
    this.call = this.conn.client.Session();
    this.call.on('data', (m: ServerMessage) => this.inbox.push(m));
    this.call.on('error', (e) => this.inbox.fail(e));
    this.call.on('end', () => this.inbox.fail(new Error('stream ended')));
  }

  send(m: Msg): void {
    this.call.write(m as ClientMessageOut);
  }

  async join(numExamples: number | string = 10): Promise<ExperimentConfig> {
    this.send({ join: { numExamples, insecureName: this.name, protocol: PROTOCOL_VERSION } });
    const m = await this.inbox.next(['plan'], 20000);
    this.plan = JSON.parse(m.plan.planJson) as ExperimentConfig;
    return this.plan;
  }

  /** Wait until the server opens a round for this client; returns the round number. */
  async roundStart(timeoutMs = 30000): Promise<number> {
    for (;;) {
      const m = await this.inbox.next(['roundKey', 'roundStart', 'averaged'], timeoutMs);
      if (m.kind === 'roundStart') return m.roundStart.round;
    }
  }

  /** Play `steps` well-formed local steps with constant activations and gradients. */
  async playSteps(round: number, steps: number, shape: number[]): Promise<void> {
    for (let step = 1; step <= steps; step++) {
      this.send({ activations: { round, step, tensor: wireTensor('h_A', shape, 0.01), eval: false } });
      await this.inbox.next(['trunkOut'], 30000);
      this.send({ tailGrad: { round, step, tensor: wireTensor('grad_h_B', shape, 0), loss: 1, labelCount: 1 } });
      const down = await this.inbox.next(['headGrad'], 30000);
      // Joint clipping (every mode but batch) waits for the client's norm.
      if (down.headGrad.jointClip) this.send({ stepDone: { round, step, gradNorm: 0 } });
    }
  }

  /** The reason the server gives when it drops this client. */
  async dropReason(timeoutMs = 30000): Promise<string> {
    for (;;) {
      const m = await this.inbox.next(
        ['error', 'roundKey', 'roundStart', 'averaged', 'trunkOut', 'headGrad'],
        timeoutMs,
      );
      if (m.kind === 'error') return m.error.message;
    }
  }

  close(): void {
    try {
      this.call.end();
    } catch {
      /* gone */
    }
    this.conn.client.close();
  }
}
