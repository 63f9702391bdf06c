import type * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.js';
import { checkpointsAfter } from '../config/experiment.js';
import { checkExamplesForTask, type Example } from '../data/examples.js';
import { createOptimizer } from '../training/optimizer.js';
import type { EvalMetrics } from '../training/evaluate.js';
import { Inbox } from '../protocol/inbox.js';
import { readPrivateKey } from '../security/files.js';
import { connect, type ClientConnection } from './transport.js';
import { createTrainer, type Trainer } from './trainer.js';
import { DelayLine, type LinkModel } from './netem.js';
import { createUplink, type Uplink } from './uplink.js';
import { reassembling } from '../protocol/chunking.js';
import { describeConnectError } from '../security/tls.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/logger.js';
import type { ClientRoundConfig } from '../federation/strategies/strategy.js';
import { ClientParts } from './client-parts.js';
import { uplinkNoise, type UplinkNoise } from '../privacy/example-dp.js';
import type { Capture } from '../privacy/capture.js';
import { HIDDEN_SUM_TENSOR } from '../federation/secure-aggregation.js';
import { readFederationSecret } from '../security/federation-secret.js';
import { PROTOCOL_VERSION, type ClientSessionCall, type ServerMessage } from '../protocol/messages.js';
import { ClientLink, RetryableError } from './client-link.js';
import { ClientSteps, type StepPhases } from './client-step.js';
import { evaluateThroughTrunk } from './client-eval.js';
import { saveClientParts, uploadRound } from './round-end.js';

export interface ClientOptions {
  target: string;
  /** Client startup kit; null = plaintext, no payload encryption (loopback tests only). */
  kit: string | null;
  serverName?: string;
  train: Example[];
  test: Example[];
  checkpointDir?: string | null;
  log?: Log;
  onStep?: (round: number, step: number, loss: number) => void;
  /** Each training step's phases as [start, end] in epoch ms, with this client's id as the server knows it. */
  onTimeline?: (r: { client: string; round: number; step: number; spans: Record<string, [number, number]> }) => void;
  /** Name sent in --insecure mode only (with TLS the server reads the id from the certificate). */
  insecureName?: string;
  /** Simulated WAN link to the server (benchmarks); null = none. */
  link?: LinkModel | null;
  /** Connection attempts after a failure before giving up (1 s apart). */
  reconnectAttempts?: number;
  /** `--capture`: keep the token ids of the last steps, the truth an inversion attack is scored against. */
  capture?: Capture | null;
  /** Told after each part of a secure-aggregation upload (observation; tests fail a client with it). */
  onSecureAggregation?: (round: number, phase: 'keys' | 'shares' | 'masked' | 'reveal') => void;
}

export interface ClientResult {
  clientId: string;
  losses: number[];
  eval: EvalMetrics | null;
  /** Seconds per phase of a training step, summed over the steps after the first (which compiles). */
  phases: Record<string, number>;
  summary: unknown;
}

/** One connection's pieces: the stream's inbox and uplink, and the step link over them. */
interface Session {
  conn: ClientConnection;
  call: Uplink;
  inbox: Inbox<ServerMessage>;
  link: ClientLink;
}

/**
 * A client: runs head and tail on its own silo. Token ids and labels never leave it; only h_A and
 * dL/dh_B (per step) and its trainable head+tail parameters (per round, for FedAvg) go up.
 */
export class SplitClient {
  private trainer: Trainer | null = null;
  private noise: UplinkNoise | null = null;
  private readonly steps: ClientSteps;
  private evalMetrics: EvalMetrics | null = null;
  private lastRound = 0;
  /** The last training round whose parameters this client sent (its result comes back as `averaged`). */
  private sentRound = -1;
  private readonly log: Log;

  constructor(private readonly o: ClientOptions) {
    this.log = o.log ?? (() => {});
    this.steps = new ClientSteps({
      serverId: (id) => this.serverId(id),
      capture: o.capture,
      secret: () => this.secret(),
      onStep: o.onStep,
      onTimeline: o.onTimeline,
    });
  }

  /** Seconds spent per phase of a training step, summed over every step so far (the client's Prometheus counters). */
  get phases(): StepPhases {
    return this.steps.phases;
  }

  async run(): Promise<ClientResult> {
    const attempts = this.o.reconnectAttempts ?? 30;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt();
      } catch (e) {
        if (!(e instanceof RetryableError) || attempt >= attempts)
          throw e instanceof RetryableError ? new UserError(e.message) : e;
        this.log(`${e.message}; reconnecting (${attempt + 1}/${attempts})`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** One connection: join, then train and evaluate until the server finishes (or the stream fails). */
  private async attempt(): Promise<ClientResult> {
    const conn = connect(this.o.target, this.o.kit, this.o.serverName);
    const raw: ClientSessionCall = conn.client.Session();
    // keepAlive: the server's heartbeats cover a wait for our turn behind other clients.
    const inbox = new Inbox<ServerMessage>(null, true);
    let finished = false;
    const link = this.o.link ?? null;
    const onEnd = () => {
      if (!finished) inbox.fail(new RetryableError('the server closed the stream'));
    };
    // On a simulated link the end of the stream (null) queues behind the messages sent before it.
    const down = link ? new DelayLine<ServerMessage | null>(link, (m) => (m === null ? onEnd() : inbox.push(m))) : null;
    const call = createUplink(raw, link, () => this.trainer?.cfg.federation.chunk_bytes ?? Number.POSITIVE_INFINITY);
    raw.on(
      'data',
      reassembling<ServerMessage>(
        (m) => (down ? down.push(m) : inbox.push(m)),
        (e) => inbox.fail(new UserError(`malformed message from the server: ${e.message}`)),
      ),
    );
    raw.on('error', (e: grpc.ServiceError) => {
      const msg = describeConnectError(e, this.o.target);
      inbox.fail(e.code === 14 || e.code === 1 ? new RetryableError(msg) : new UserError(msg));
    });
    raw.on('end', () => (down ? down.push(null) : onEnd()));
    const heartbeat = setInterval(() => call.write({ heartbeat: { timeMs: Date.now() } }), 2000);
    try {
      call.write({
        join: {
          numExamples: this.o.train.length,
          lastRound: this.lastRound,
          protocol: PROTOCOL_VERSION,
          insecureName: this.o.kit ? '' : (this.o.insecureName ?? ''),
        },
      });
      const first = await inbox.next(['plan', 'error'], 60000);
      if (first.kind === 'error') throw new UserError(`server refused the session: ${first.error.message}`);
      if (!this.trainer) {
        const plan = JSON.parse(first.plan.planJson) as ExperimentConfig;
        checkExamplesForTask([...this.o.train, ...this.o.test], plan.data.task);
        this.trainer = createTrainer(plan, this.o.train);
      }
      const result = await this.loop({ conn, call, inbox, link: this.stepLink(conn, call, inbox) });
      finished = true;
      return result;
    } finally {
      clearInterval(heartbeat);
      raw.end();
      conn.client.close();
    }
  }

  /** This connection's step link, with the plan's wire dtype, shapes, payload key and activation noise. */
  private stepLink(conn: ClientConnection, call: Uplink, inbox: Inbox<ServerMessage>): ClientLink {
    const { cfg, config } = this.trainer!;
    this.noise ??= uplinkNoise(cfg, this.name(conn));
    return new ClientLink({
      call,
      inbox,
      clientId: conn.clientId,
      activationDtype: cfg.transport.activation_dtype,
      payloadKey:
        this.o.kit && cfg.security.payload_encryption ? readPrivateKey(join(this.o.kit, 'payload.key')) : null,
      shape: [cfg.data.batch_size, cfg.data.seq_len, config.hidden_size],
      timeoutMs: cfg.federation.client_timeout_ms,
      noise: this.noise,
    });
  }

  /**
   * With TLS the certificate names the client; in --insecure mode its --name does (two plaintext
   * clients would otherwise share one checkpoint folder).
   */
  private name(conn: ClientConnection): string {
    return this.o.kit ? conn.clientId : this.o.insecureName || conn.clientId;
  }

  /** The server's messages, in order, until it finishes. */
  private async loop(session: Session): Promise<ClientResult> {
    const t = this.trainer!;
    const { cfg } = t;
    const { conn, inbox, link } = session;
    const parts = new ClientParts(t);
    const name = this.name(conn);
    for (;;) {
      const m = await inbox.next(
        ['roundKey', 'roundStart', 'averaged', 'finished', 'error'],
        10 * cfg.federation.client_timeout_ms,
      );
      if (m.kind === 'error') {
        const err = m.error;
        if (err.code === 'DROPPED') throw new RetryableError(`dropped by the server: ${err.message}`);
        throw new UserError(`server error: ${err.message}`);
      }
      if (m.kind === 'finished') return this.finish(name, m.finished.summaryJson);
      if (m.kind === 'roundKey') {
        link.roundKey(m.roundKey);
        continue;
      }
      if (m.kind === 'averaged') {
        const a = m.averaged;
        if (a.tensors.length === 1 && a.tensors[0].name === HIDDEN_SUM_TENSOR)
          parts.receiveHidden(a.tensors[0], link.context(a.round, 0), a.round, Number(a.numExamples), this.secret());
        else parts.receive(a.tensors, link.context(a.round, 0));
        this.lastRound = a.round;
        // Checkpoint the round's result (not a hand-off, which precedes this client's turn).
        if (this.o.checkpointDir && a.round === this.sentRound && checkpointsAfter(cfg, a.round))
          saveClientParts(join(this.o.checkpointDir, name), t, { step: this.steps.localStep, round: a.round });
        continue;
      }
      const start = m.roundStart;
      if (start.evaluate) {
        // An evaluation pass reports metrics only; the parameters stay here.
        const metrics = await evaluateThroughTrunk(t, link, start.round, this.o.test);
        this.evalMetrics = metrics;
        this.log(`eval: loss ${metrics.loss.toFixed(4)}, accuracy ${metrics.accuracy.toFixed(4)}`);
        session.call.write({ evalResult: { round: start.round, metricsJson: JSON.stringify({ eval: metrics }) } });
        continue;
      }
      await this.trainRound(session, parts, start);
    }
  }

  /** A training round: the strategy's client half starts it, the local steps run, the parts go up. */
  private async trainRound(
    session: Session,
    parts: ClientParts,
    start: { round: number; localSteps: number; configJson: string },
  ): Promise<void> {
    const t = this.trainer!;
    const { round } = start;
    const config = (start.configJson ? JSON.parse(start.configJson) : {}) as ClientRoundConfig;
    if (config.reset_optimizer) t.optimizer = createOptimizer(t.cfg.optimizer);
    parts.startRound();
    t.half?.startRound?.({ params: t.params, start: () => parts.roundStart(), config });
    for (let step = 1; step <= start.localSteps; step++) await this.steps.step(t, session.link, round, step);
    this.sentRound = round;
    await uploadRound({
      t,
      parts,
      link: session.link,
      call: session.call,
      inbox: session.inbox,
      round,
      serverId: this.serverId(session.conn.clientId),
      numExamples: this.o.train.length,
      secret: this.secret(),
      onSecureAggregation: this.o.onSecureAggregation,
    });
  }

  private async finish(name: string, summaryJson: string): Promise<ClientResult> {
    const t = this.trainer!;
    const steps = this.steps;
    const n = Math.max(1, steps.losses.length - 1);
    const perStep = Object.entries(steps.steadyPhases).map(([k, v]) => `${k} ${((1000 * v) / n).toFixed(1)} ms`);
    this.log(`training finished; per-step time: ${perStep.join(', ')}`);
    await t.head.release();
    await t.tail.release();
    return {
      clientId: name,
      losses: steps.losses,
      eval: this.evalMetrics,
      phases: { ...steps.steadyPhases },
      summary: JSON.parse(summaryJson),
    };
  }

  /** This client's id as the server knows it: its certificate's, or in --insecure mode its --name. */
  private serverId(connectionId: string): string {
    return this.o.kit || !this.o.insecureName ? connectionId : `insecure-${this.o.insecureName}`;
  }

  /** privacy.hide_aggregate's federation secret from this client's kit (null without one). */
  private secret(): Buffer | null {
    return this.trainer?.cfg.privacy.hide_aggregate && this.o.kit ? readFederationSecret(this.o.kit) : null;
  }
}

export function runClient(o: ClientOptions): Promise<ClientResult> {
  return new SplitClient(o).run();
}
