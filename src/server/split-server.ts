import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ExperimentConfig, ServerMode } from '../config/schema.js';
import { checkpointsAfter, evaluatesAfter, peftOf, resolveModel } from '../config/experiment.js';
import { partParamNames } from '../model/partition.js';
import type { ClientPartSpec, Params, Strategy } from '../federation/strategies/strategy.js';
import { createStrategy, strategyTraits } from '../federation/strategies/lookup.js';
import { ProtocolError } from '../protocol/tensors.js';
import type { PeerIdentity, RevocationChecker } from '../security/tls.js';
import { clientLimits, type ClientLimits } from './client-limits.js';
import { RoundAggregator } from './aggregation.js';
import { clientPartSpec, clientPlan, serverWeights } from './client-update.js';
import { loadServerCheckpoint, saveServerCheckpoint, trunkLeftInBase } from './server-checkpoint.js';
import {
  summarizeEvals,
  trafficMeter,
  type EvalMetrics,
  type EvalResult,
  type RoundRecord,
  type ServerSummary,
} from './records.js';
import type { ModelConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/logger.js';
import type { Participant } from './participant.js';
import type { ClientMessage, ParentSubCall, ServerSessionCall } from '../protocol/messages.js';
import { TrunkPool } from './trunk-pool.js';
import { BusyLog } from './busy-log.js';
import { Round, sendHidden, sendParams } from './round.js';
import type { HiddenAggregate } from './secure-collect.js';
import { Admission } from './admission.js';
import { SERVER_MODE_RUNNERS } from './modes/registry.js';
import type { ServerModeRunner } from './modes/mode.js';
import type { Capture } from '../privacy/capture.js';
import { defaultThreads } from '../runtime/threads.js';

export type { EvalMetrics, EvalResult, RoundRecord, ServerMode, ServerSummary };

export interface ServerOptions {
  cfg: ExperimentConfig;
  /** Server startup kit (for payload keys); null = plaintext without payload encryption. */
  kit: string | null;
  /** Checked on every message of a live stream: a revoked client is dropped within one step. */
  revocation?: RevocationChecker | null;
  mode?: ServerMode;
  checkpointDir?: string | null;
  resume?: boolean;
  log?: Log;
  /** Hierarchical mode: wait for this many sub-servers (`flglm server --role sub`) to attach. */
  expectSubServers?: number;
  /** Every message decoded from a client (audits, tests). */
  onReceive?: (clientId: string, message: ClientMessage) => void;
  /** Metrics records (per step and per round), e.g. appended to metrics.jsonl. */
  onMetric?: (record: Record<string, unknown>) => void;
  /** A mode runner not in the registry (an extension); `mode` still names it in records. */
  runner?: ServerModeRunner;
  /** `--capture`: keep received activations to measure the inversion attack (privacy/capture.ts). */
  capture?: Capture | null;
}

/**
 * The FL-GLM server: owns the trunk (as one or more replicas in worker threads), runs rounds in
 * sequential, batch or hierarchical mode, averages client parts with a Strategy, keeps the latest
 * global client parts to re-sync (re)joining clients, and checkpoints atomically every round.
 */
export class SplitServer {
  readonly mode: ServerMode;
  private readonly runner: ServerModeRunner;
  private readonly cfg: ExperimentConfig;
  private readonly participants = new Map<string, Participant>();
  private pool!: TrunkPool;
  private readonly strategy: Strategy;
  private readonly aggregator: RoundAggregator;
  private model!: ModelConfig;
  /** Frozen trunk weights that round checkpoints leave in the base model folder (null: they store all). */
  private trunkInBase: string[] | null = null;
  /** What each client must send at round end, and what it may make the server hold. */
  private partSpec!: ClientPartSpec;
  limits!: ClientLimits;
  private admission!: Admission;
  private globalClientParams: Params | null = null;
  private hidden: HiddenAggregate | null = null;
  private completedRound = 0;
  private tokensSeen = 0;
  private history: RoundRecord[] = [];
  private readonly busy = new BusyLog();
  private started = false;
  private startTimer: NodeJS.Timeout | null = null;
  private readonly log: Log;
  readonly done: Promise<ServerSummary>;
  private resolveDone!: (s: ServerSummary) => void;
  private rejectDone!: (e: Error) => void;

  constructor(private readonly o: ServerOptions) {
    this.cfg = o.cfg;
    this.mode = o.mode ?? o.cfg.federation.mode;
    this.runner = o.runner ?? SERVER_MODE_RUNNERS[this.mode];
    const { strategy } = o.cfg.federation;
    if (strategyTraits(strategy.name).handoff && this.mode !== 'sequential')
      throw new UserError(
        `federation.strategy ${strategy.name} hands the client parts on, which needs --mode sequential (this server runs ${this.mode})`,
      );
    this.strategy = createStrategy(o.cfg.federation.strategy, o.cfg.federation.clients);
    this.aggregator = new RoundAggregator(this.strategy, this.cfg);
    this.log = o.log ?? (() => {});
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => {});
  }

  /** Build the trunk replicas, from the last checkpoint when resuming. */
  async init(): Promise<void> {
    const { config, store } = resolveModel(this.cfg, serverWeights(this.cfg));
    this.model = config;
    this.partSpec = this.aggregator.uploadSpec(clientPartSpec(this.cfg, config), store);
    this.limits = clientLimits(this.cfg, config, this.partSpec);
    this.admission = new Admission({
      cfg: this.cfg,
      kit: this.o.kit,
      limits: this.limits,
      revocation: this.o.revocation ?? null,
      participants: this.participants,
      onEvent: this.o.onMetric,
      log: this.log,
      joined: (s, lastRound) => this.joined(s, lastRound),
    });
    const peft = peftOf(this.cfg);
    const threads =
      this.cfg.runtime.threads ?? Math.max(1, Math.floor(defaultThreads() / this.runner.replicaCount(this.cfg)));
    const trunkNames = new Set(partParamNames('trunk', config, this.cfg.split, store));
    this.trunkInBase = trunkLeftInBase(this.cfg, [...trunkNames]);
    let optimizerState;
    let resumedSteps: number[] | null = null;
    const ckpt = this.o.checkpointDir ? join(this.o.checkpointDir, 'latest') : null;
    if (this.o.resume) {
      if (!ckpt || !existsSync(join(ckpt, 'checkpoint.json')))
        throw new UserError(`--resume: no complete server checkpoint in ${ckpt ?? '(no --checkpoints folder given)'}`);
      const loaded = loadServerCheckpoint(ckpt);
      for (const [n, t] of loaded.trunk) store.set(n, t);
      optimizerState = loaded.optimizer;
      let trunkSteps: number[];
      ({
        round: this.completedRound,
        trunkSteps,
        history: this.history,
        tokensSeen: this.tokensSeen,
        globalClientParams: this.globalClientParams,
      } = loaded.progress);
      this.hidden = loaded.progress.hidden ?? null;
      resumedSteps = trunkSteps;
      this.strategy.restore(loaded.progress.strategyState);
      this.log(`resumed from ${ckpt}: round ${this.completedRound} of ${this.cfg.federation.rounds} complete`);
    }
    this.pool = new TrunkPool(this.cfg, {
      model: config,
      split: this.cfg.split,
      peft,
      optimizer: this.cfg.optimizer,
      runtime: { device: this.cfg.runtime.device, threads, spinning: false, arena: this.cfg.runtime.memory_arena },
      params: [...store].filter(([n]) => trunkNames.has(n)),
      // Several trunk replicas are averaged like client parts, so the strategy's trunk hook (FedProx's
      // pull towards the round's trunk) runs on each of them.
      strategy: this.runner.replicaCount(this.cfg) > 1 ? this.cfg.federation.strategy : null,
    });
    if (resumedSteps) this.pool.trunkSteps = resumedSteps;
    this.pool.startLocal(this.runner.replicaCount(this.cfg), optimizerState);
  }

  /** gRPC Session handler: admission (identity, payload key, revocation, limits), then the plan. */
  onSession = (call: ServerSessionCall, peer: PeerIdentity): void => this.admission.accept(call, peer);

  /** A client was admitted: give it the plan and the current global parts, maybe start training. */
  private joined(s: Participant, lastRound: number): void {
    this.log(
      `client ${s.id} joined with ${s.numExamples} examples (last round ${lastRound}; ${this.participants.size}/${this.cfg.federation.clients} connected)`,
      { event: 'join', client: s.id, examples: s.numExamples, connected: this.participants.size },
    );
    s.send({ plan: { planJson: JSON.stringify(clientPlan(this.cfg, this.mode)) } });
    this.sendGlobal(s, this.completedRound, null);
    this.maybeStart();
  }

  /** The current global client parts (or the hidden aggregate, which only clients can open). */
  private sendGlobal(s: Participant, round: number, deltas: Map<string, Uint16Array> | null): void {
    if (this.hidden) sendHidden(s, this.hidden);
    else if (this.globalClientParams) sendParams(s, round, this.globalClientParams, deltas);
  }

  /** Clients connected now and the bytes they have queued unprocessed (metrics gauges). */
  connection(): { clients: number; queuedBytes: number } {
    const live = [...this.participants.values()].filter((p) => !p.closed);
    return { clients: live.length, queuedBytes: live.reduce((a, p) => a + p.inbox.queuedBytes, 0) };
  }

  /** A sub-server attached (hierarchical scale-out): one more trunk replica from the next round on. */
  onSubServer = (call: ParentSubCall, peer: PeerIdentity): void => {
    void this.pool.attachSubServer(call, peer, this.mode, this.log).then((attached) => {
      if (attached) this.maybeStart();
    });
  };

  private maybeStart(): void {
    if (this.started) return;
    const f = this.cfg.federation;
    if (this.pool.remoteCount < (this.o.expectSubServers ?? 0)) return;
    if (this.participants.size >= f.clients) return this.start();
    if (!this.startTimer) {
      // Start with fewer clients (>= min_clients) if the rest do not come in time.
      this.startTimer = setTimeout(() => {
        if (
          !this.started &&
          this.participants.size >= f.min_clients &&
          this.pool.remoteCount >= (this.o.expectSubServers ?? 0)
        )
          this.start();
      }, f.client_timeout_ms);
    }
  }

  private start(): void {
    this.started = true;
    if (this.startTimer) clearTimeout(this.startTimer);
    this.run().then(this.resolveDone, this.rejectDone);
  }

  private async run(): Promise<ServerSummary> {
    const f = this.cfg.federation;
    try {
      let evals: EvalResult[] = [];
      for (let round = this.completedRound + 1; round <= f.rounds; round++) {
        await this.trainRound(round);
        if (evaluatesAfter(this.cfg, round)) evals = await this.evalRound(round);
      }
      if (this.completedRound === f.rounds && evals.length === 0) evals = await this.evalRound(f.rounds);
      for (const s of this.participants.values()) {
        s.send({ finished: { summaryJson: JSON.stringify({ history: this.history, eval: evals }) } });
        s.close();
      }
      return {
        mode: this.mode,
        strategy: f.strategy.name,
        rounds: f.rounds,
        steps: this.history.reduce((a, r) => a + r.steps, 0),
        tokens: this.history.reduce((a, r) => a + r.tokens, 0),
        history: this.history,
        eval: evals,
        eval_summary: summarizeEvals(evals),
      };
    } finally {
      await this.pool.close();
    }
  }

  /** Stop the trunk workers (also when training never started or failed). */
  async close(): Promise<void> {
    if (this.startTimer) clearTimeout(this.startTimer);
    await this.pool?.close();
  }

  /** Drop a client from the round (it may rejoin later), telling it why. */
  private drop(s: Participant, round: number, err: Error): void {
    this.log(`client ${s.id} dropped from round ${round}: ${err.message}`, {
      event: 'drop',
      client: s.id,
      round,
      reason: err.message,
    });
    this.o.onMetric?.({ type: 'drop', round, client: s.id, reason: err.message, time: Date.now() });
    if (this.participants.get(s.id) === s) this.participants.delete(s.id);
    s.close(err.message);
  }

  /** The connected clients, less any revoked since the last round: no new round key for them. */
  private liveParticipants(round: number): Participant[] {
    for (const s of [...this.participants.values()]) {
      const revoked = this.admission.revokedReason(s.peer);
      if (revoked) this.drop(s, round, new ProtocolError(revoked));
    }
    // In id order, not join order: which replica serves whom, and the order of sums, repeat run to run.
    return [...this.participants.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  private newRound(round: number, participants: Participant[], evaluate: boolean): Round {
    const total =
      this.cfg.federation.rounds *
      this.runner.trunkStepsPerRound(this.cfg, participants.length, this.pool.replicas.length);
    return new Round(
      round,
      participants,
      {
        cfg: this.cfg,
        model: this.model,
        limits: this.limits,
        partSpec: this.partSpec,
        strategy: this.strategy,
        startParams: this.globalClientParams,
        deltaBase: this.aggregator.deltaBase(this.globalClientParams),
        replicas: this.pool.replicas,
        busy: this.busy,
        nextTrunkLr: (replica) => this.pool.nextLr(replica, total),
        drop: (s, r, e) => this.drop(s, r, e),
        onReceive: this.o.onReceive,
        onMetric: this.o.onMetric,
        capture: this.o.capture,
      },
      evaluate,
    );
  }

  private async trainRound(round: number): Promise<void> {
    const f = this.cfg.federation;
    const t0 = performance.now();
    const participants = this.liveParticipants(round);
    if (participants.length < f.min_clients)
      throw new Error(`round ${round}: ${participants.length} clients connected, min_clients is ${f.min_clients}`);
    this.pool.startRound();
    const traffic = trafficMeter(participants);
    const ctx = this.newRound(round, participants, false);
    const updates = await this.runner.train(ctx);
    // Relay may give a client several turns or none in a round: count clients, not updates.
    const finished = participants
      .filter((p) => !ctx.dropped.has(p.id))
      .map((p) => p.id)
      .sort();
    if (updates.length === 0 || finished.length < f.min_clients)
      throw new Error(`round ${round}: only ${finished.length} clients finished it, min_clients is ${f.min_clients}`);
    let mark = performance.now();
    const lap = () => {
      const now = performance.now(),
        s = (now - mark) / 1000;
      mark = now;
      return s;
    };
    // privacy.hide_aggregate: the server relays a sum it cannot open; otherwise the strategy steps.
    this.hidden = updates[0].hidden ?? null;
    const { next, deltas } = this.hidden
      ? { next: null, deltas: null }
      : this.aggregator.aggregate(round, updates, this.globalClientParams);
    this.globalClientParams = next;
    // Averaging: every client continues from the new global parts. A hand-off: the next round's
    // first client gets them with its turn, so the broadcast is needed only where every client must hold
    // them (an evaluation, a checkpoint, the end).
    const needAll = !ctx.plan.handoff || evaluatesAfter(this.cfg, round) || checkpointsAfter(this.cfg, round);
    const aggregate_s = lap();
    if (needAll)
      for (const id of finished) {
        const s = this.participants.get(id);
        if (s) this.sendGlobal(s, round, deltas);
      }
    const broadcast_s = lap();
    await this.pool.average();
    const replicas_s = lap();
    const [busy, overlap] = this.busy.take();
    this.tokensSeen += ctx.tokens;
    const record: RoundRecord = {
      round,
      clients: finished,
      dropped: [...ctx.dropped],
      wall_s: (performance.now() - t0) / 1000,
      steps: ctx.losses.length,
      train_loss: ctx.losses.length ? ctx.losses.reduce((a, b) => a + b, 0) / ctx.losses.length : NaN,
      tokens: ctx.tokens,
      ...traffic(),
      replica_busy_s: busy,
      replica_overlap_s: overlap,
      round_end: {
        aggregate_s,
        broadcast_s,
        replicas_s,
        checkpoint_s: 0,
        ...(ctx.secure
          ? {
              secure_aggregation_s: Object.values(ctx.securePhases).reduce((a, s) => a + s, 0),
              secure_aggregation: { ...ctx.securePhases },
            }
          : {}),
      },
    };
    this.history.push(record);
    this.completedRound = round;
    // The checkpoint holds the history up to this round (its own record says checkpoint_s 0).
    await this.checkpoint(round);
    record.round_end!.checkpoint_s = lap();
    this.o.onMetric?.({ type: 'round', ...record, tokens_seen: this.tokensSeen, time: Date.now() });
    const parallel =
      this.pool.replicas.length > 1 ? `, replicas busy ${busy.toFixed(1)} s (${overlap.toFixed(1)} s in parallel)` : '';
    this.log(
      `round ${round}/${f.rounds}: ${finished.length} clients, loss ${record.train_loss.toFixed(4)}, ${record.wall_s.toFixed(1)} s${parallel}${record.dropped.length ? `, dropped ${record.dropped.join(', ')}` : ''}`,
      {
        event: 'round',
        round,
        clients: finished.length,
        loss: record.train_loss,
        wall_s: record.wall_s,
        steps: record.steps,
        dropped: record.dropped.join(',') || undefined,
      },
    );
  }

  /** Every connected client evaluates the current model on its held-out data, through the trunk. */
  private async evalRound(round: number): Promise<EvalResult[]> {
    const t0 = performance.now();
    const participants = this.liveParticipants(round);
    const evals = await this.newRound(round, participants, true).evaluateAll();
    const summary = summarizeEvals(evals);
    this.o.onMetric?.({
      type: 'eval',
      round,
      tokens_seen: this.tokensSeen,
      ...summary,
      clients: evals,
      wall_s: (performance.now() - t0) / 1000,
      time: Date.now(),
    });
    if (summary.examples)
      this.log(
        `eval after round ${round}: loss ${summary.loss.toFixed(4)}, accuracy ${summary.accuracy.toFixed(4)} on ${summary.examples} examples`,
        { event: 'eval', round, loss: summary.loss, accuracy: summary.accuracy, examples: summary.examples },
      );
    return evals;
  }

  private async checkpoint(round: number): Promise<void> {
    if (!this.o.checkpointDir || !checkpointsAfter(this.cfg, round)) return;
    // The frozen trunk left in the base model folder: the replica sends only what trains.
    const state = await this.pool.replicas[0].getState(!this.trunkInBase);
    saveServerCheckpoint(
      join(this.o.checkpointDir, 'latest'),
      state,
      {
        model: this.model,
        peft: peftOf(this.cfg),
        mode: this.mode,
        strategy: this.cfg.federation.strategy.name,
        baseModel: this.cfg.model.hf_path ?? undefined,
        frozen: this.trunkInBase ?? [],
      },
      {
        round,
        trunkSteps: this.pool.trunkSteps,
        history: this.history,
        tokensSeen: this.tokensSeen,
        globalClientParams: this.globalClientParams,
        strategyState: this.strategy.state(),
        hidden: this.hidden,
      },
    );
  }
}
