import type * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.js';
import { checkpointsAfter, peftOf } from '../config/experiment.js';
import { evalBatches } from '../data/batches.js';
import { checkExamplesForTask, isPromptExample, type Example } from '../data/examples.js';
import { clipAndApply, createOptimizer, globalNorm, learningRate } from '../training/optimizer.js';
import { evaluateBatches, type EvalMetrics } from '../training/evaluate.js';
import { Inbox } from '../protocol/inbox.js';
import { ACTIVATION_WIRE_DTYPES, decodeActivation, encodeActivation, type TensorContext } from '../protocol/tensors.js';
import { PayloadChannel, unwrapRoundKey } from '../security/payload.js';
import { readPrivateKey } from '../security/files.js';
import { saveCheckpoint } from '../training/checkpoint.js';
import { partParamNames } from '../model/partition.js';
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
import { ActivationNoise } from '../privacy/activation-noise.js';
import type { Capture } from '../privacy/capture.js';
import { secureUpload } from './secure-upload.js';
import { HIDDEN_SUM_TENSOR } from '../federation/secure-aggregation.js';
import { readFederationSecret } from '../security/federation-secret.js';
import { PROTOCOL_VERSION, type ClientSessionCall, type ServerMessage } from '../protocol/messages.js';

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

const zeroPhases = (): Record<string, number> => ({
  head_forward: 0,
  wait_trunk_forward: 0,
  tail_step: 0,
  wait_trunk_backward: 0,
  head_backward: 0,
  optimizer: 0,
});

/** Failures after which trying again can help: the server restarted, dropped us, or is not up yet. */
class RetryableError extends Error {}

/**
 * A client: runs head and tail on its own silo. Token ids and labels never leave it; only h_A and
 * dL/dh_B (per step) and its trainable head+tail parameters (per round, for FedAvg) go up.
 */
export class SplitClient {
  private trainer: Trainer | null = null;
  private noise: ActivationNoise | null = null;
  private readonly losses: number[] = [];
  private evalMetrics: EvalMetrics | null = null;
  private localStep = 0;
  private lastRound = 0;
  /** The last training round whose parameters this client sent (its result comes back as `averaged`). */
  private sentRound = -1;
  /** Seconds spent per phase of a training step, summed over every step so far (the client's Prometheus counters). */
  readonly phases = zeroPhases();
  /** The same from this process's second step on, for per-step means: the first compiles every program. */
  private readonly steadyPhases = zeroPhases();
  private readonly log: Log;

  constructor(private readonly o: ClientOptions) {
    this.log = o.log ?? (() => {});
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
    const inbox = new Inbox<ServerMessage>();
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
      const result = await this.loop(conn, call, inbox);
      finished = true;
      return result;
    } finally {
      clearInterval(heartbeat);
      raw.end();
      conn.client.close();
    }
  }

  private async loop(conn: ClientConnection, call: Uplink, inbox: Inbox<ServerMessage>): Promise<ClientResult> {
    const t = this.trainer!;
    const { cfg } = t;
    const payloadKey =
      this.o.kit && cfg.security.payload_encryption ? readPrivateKey(join(this.o.kit, 'payload.key')) : null;
    let channel: PayloadChannel | null = null;
    let keyId = '';
    const activations = ACTIVATION_WIRE_DTYPES[cfg.transport.activation_dtype];
    const ctx = (round: number, step: number): TensorContext => ({
      clientId: conn.clientId,
      keyId,
      round,
      step,
      channel,
      activations,
    });
    // With TLS the certificate names the client; in --insecure mode its --name does (two plaintext
    // clients would otherwise share one checkpoint folder).
    const name = this.o.kit ? conn.clientId : this.o.insecureName || conn.clientId;
    const timeout = cfg.federation.client_timeout_ms;
    const parts = new ClientParts(t);
    const noise = cfg.privacy.activation_noise;
    this.noise ??= new ActivationNoise(noise.sigma, noise.gradients, cfg.seed, name, noise.relative);
    for (;;) {
      const m = await inbox.next(['roundKey', 'roundStart', 'averaged', 'finished', 'error'], 10 * timeout);
      if (m.kind === 'error') {
        const err = m.error;
        if (err.code === 'DROPPED') throw new RetryableError(`dropped by the server: ${err.message}`);
        throw new UserError(`server error: ${err.message}`);
      }
      if (m.kind === 'finished') {
        const n = Math.max(1, this.losses.length - 1);
        this.log(
          `training finished; per-step time: ${Object.entries(this.steadyPhases)
            .map(([k, v]) => `${k} ${((1000 * v) / n).toFixed(1)} ms`)
            .join(', ')}`,
        );
        await t.head.release();
        await t.tail.release();
        return {
          clientId: name,
          losses: this.losses,
          eval: this.evalMetrics,
          phases: { ...this.steadyPhases },
          summary: JSON.parse(m.finished.summaryJson),
        };
      }
      if (m.kind === 'roundKey') {
        const k = m.roundKey;
        keyId = k.keyId;
        channel =
          k.wrappedKey.length && payloadKey ? new PayloadChannel(unwrapRoundKey(k.wrappedKey, payloadKey), 'up') : null;
        continue;
      }
      if (m.kind === 'averaged') {
        const a = m.averaged;
        if (a.tensors.length === 1 && a.tensors[0].name === HIDDEN_SUM_TENSOR)
          parts.receiveHidden(a.tensors[0], ctx(a.round, 0), a.round, Number(a.numExamples), this.federationSecret());
        else parts.receive(a.tensors, ctx(a.round, 0));
        this.lastRound = a.round;
        // Checkpoint the round's result (not a relay hand-off, which precedes this client's turn):
        // only the client's own parts, frozen weights included; the trunk is the server's.
        if (this.o.checkpointDir && a.round === this.sentRound && checkpointsAfter(cfg, a.round)) {
          const own = new Set([
            ...partParamNames('head', t.config, cfg.split, t.store),
            ...partParamNames('tail', t.config, cfg.split, t.store),
          ]);
          saveCheckpoint(
            join(this.o.checkpointDir, name),
            new Map([...t.store].filter(([n]) => own.has(n))),
            {
              model: t.config,
              peft: peftOf(cfg),
              step: this.localStep,
              round: a.round,
              data: t.stream.state(),
              base_model: cfg.model.hf_path ?? undefined,
            },
            t.optimizer.state(),
            undefined,
            cfg.model.hf_path,
          );
        }
        continue;
      }
      const start = m.roundStart;
      const { round } = start;
      if (start.evaluate) {
        // An evaluation pass reports metrics only; the parameters stay here.
        call.write({ evalResult: { round, metricsJson: await this.evaluate(call, inbox, round, ctx) } });
        continue;
      }
      const config = (start.configJson ? JSON.parse(start.configJson) : {}) as ClientRoundConfig;
      if (config.reset_optimizer) t.optimizer = createOptimizer(cfg.optimizer);
      parts.startRound();
      t.half?.startRound?.({ params: t.params, start: () => parts.roundStart(), config });
      for (let step = 1; step <= start.localSteps; step++) await this.trainStep(call, inbox, round, step, ctx);
      this.sentRound = round;
      if (cfg.privacy.secure_aggregation.enabled) {
        await secureUpload({
          call,
          inbox,
          round,
          clientId: this.serverId(conn.clientId),
          params: t.params,
          ctx: ctx(round, 0),
          timeoutMs: timeout,
          secret: this.federationSecret(),
          dropped: (msg) => new RetryableError(`dropped by the server: ${msg}`),
          sent: (phase) => this.o.onSecureAggregation?.(round, phase),
        });
      } else
        call.write({
          parameters: { round, numExamples: this.o.train.length, tensors: parts.upload(ctx(round, 0)) },
        });
    }
  }

  /** This client's id as the server knows it: its certificate's, or in --insecure mode its --name. */
  private serverId(connectionId: string): string {
    return this.o.kit || !this.o.insecureName ? connectionId : `insecure-${this.o.insecureName}`;
  }

  /** privacy.hide_aggregate's federation secret from this client's kit (null without one). */
  private federationSecret(): Buffer | null {
    return this.trainer?.cfg.privacy.hide_aggregate && this.o.kit ? readFederationSecret(this.o.kit) : null;
  }

  /** The server's answer for this step (h_B or dL/dh_A), decoded; a drop ends this attempt (retryable). */
  private async exchange(inbox: Inbox<ServerMessage>, kind: 'trunkOut' | 'headGrad', name: string, c: TensorContext) {
    const t = this.trainer!;
    const m = await inbox.next([kind, 'error'], t.cfg.federation.client_timeout_ms);
    if (m.kind === 'error') throw new RetryableError(`dropped by the server: ${m.error.message}`);
    const body = m.kind === 'trunkOut' ? m.trunkOut : m.headGrad;
    if (!body.tensor) throw new UserError(`malformed message from the server: ${kind} without a tensor`);
    const { batch_size: B, seq_len: S } = t.cfg.data;
    return {
      tensor: decodeActivation(body.tensor, { name, shape: [B, S, t.config.hidden_size] }, c),
      gradNorm: Number(body.gradNorm) || 0,
      jointClip: Boolean(body.jointClip),
    };
  }

  private async trainStep(
    call: Uplink,
    inbox: Inbox<ServerMessage>,
    round: number,
    step: number,
    ctx: (r: number, s: number) => TensorContext,
  ): Promise<void> {
    const t = this.trainer!;
    const c = ctx(round, step);
    const batch = t.stream.next();
    this.o.capture?.tokens(this.serverId(c.clientId), round, step, batch.tokens, t.tokenizer.pad); // keyed as the server's capture is
    let mark = performance.now();
    const timed = this.localStep > 0;
    const lap = (phase: string) => {
      const now = performance.now(),
        s = (now - mark) / 1000;
      this.phases[phase] += s;
      if (timed) this.steadyPhases[phase] += s;
      mark = now;
    };
    const masks = await t.head.newDropoutMasks(batch.tokens.shape[0], batch.tokens.shape[1]);
    const hA = await t.head.forward(batch.tokens, true, masks);
    call.write({
      activations: { round, step, tensor: encodeActivation('h_A', this.noise!.apply(hA), c), eval: false },
    });
    lap('head_forward');
    const { tensor: hB } = await this.exchange(inbox, 'trunkOut', 'h_B', c);
    lap('wait_trunk_forward');
    const out = await t.tail.step(hB, batch.labels);
    const dhB = this.noise!.gradients ? this.noise!.apply(out.inputGrad!) : out.inputGrad!;
    call.write({
      tailGrad: {
        round,
        step,
        tensor: encodeActivation('grad_h_B', dhB, c),
        loss: out.loss,
        labelCount: batch.labelCount,
      },
    });
    lap('tail_step');
    const { tensor: dhA, gradNorm: trunkNorm, jointClip } = await this.exchange(inbox, 'headGrad', 'grad_h_A', c);
    lap('wait_trunk_backward');
    const h = await t.head.backward(batch.tokens, dhA, masks);
    lap('head_backward');
    const grads = new Map(out.grads);
    for (const [n, g] of h.grads) {
      const other = grads.get(n);
      if (other)
        for (let i = 0; i < g.length; i++) other[i] += g[i]; // tied embeddings: head and tail both use it
      else grads.set(n, g);
    }
    t.half?.correctGradient?.(grads, t.params);
    // One model, one norm: with joint clipping, clip by sqrt(|g_trunk|^2 + |g_client|^2) and tell
    // the server ours (batch mode: each side clips its own).
    const own = globalNorm(grads.values());
    if (jointClip) {
      // The trunk's update waits for this norm: sent before our update and next head forward block
      // this thread (left queued, it arrived 20-30 ms later with our next h_A; trace, 2026-12-02).
      call.write({ stepDone: { round, step, gradNorm: own } });
      await call.sent();
    }
    // With a hand-off the client parts follow one schedule across the federation (the step travels
    // with the optimizer state), as the centralized model does over the same budget.
    const f = t.cfg.federation;
    const total = f.rounds * f.local_steps * (t.handoff ? f.clients : 1);
    const lr = learningRate(t.cfg.optimizer.lr, t.cfg.schedule, t.handoff ? t.optimizer.step : this.localStep, total);
    clipAndApply(
      t.optimizer,
      t.params,
      grads,
      jointClip ? Math.hypot(own, trunkNorm) : own,
      t.cfg.optimizer.grad_clip,
      lr,
    );
    lap('optimizer');
    this.localStep++;
    this.losses.push(out.loss);
    this.o.onStep?.(round, step, out.loss);
  }

  private async evaluate(
    call: Uplink,
    inbox: Inbox<ServerMessage>,
    round: number,
    ctx: (r: number, s: number) => TensorContext,
  ): Promise<string> {
    const t = this.trainer!;
    const { batch_size: B, seq_len: S } = t.cfg.data;
    let step = 0;
    this.evalMetrics = await evaluateBatches(
      evalBatches(this.o.test, t.tokenizer, B, S, t.cfg.eval.max_batches),
      async (b) => {
        const c = ctx(round, ++step);
        const hA = await t.head.forward(b.tokens);
        call.write({
          activations: { round, step, tensor: encodeActivation('h_A', this.noise!.apply(hA), c), eval: true },
        });
        return t.tail.evaluate((await this.exchange(inbox, 'trunkOut', 'h_B', c)).tensor, b.labels);
      },
      this.o.test.some(isPromptExample),
    );
    this.log(`eval: loss ${this.evalMetrics.loss.toFixed(4)}, accuracy ${this.evalMetrics.accuracy.toFixed(4)}`);
    return JSON.stringify({ eval: this.evalMetrics });
  }
}

export function runClient(o: ClientOptions): Promise<ClientResult> {
  return new SplitClient(o).run();
}
