import type { ExperimentConfig } from '../config/schema.js';
import { evaluatesAfter } from '../config/experiment.js';
import { federatedProblems } from '../config/run-rules.js';
import type { Strategy } from '../federation/strategies/strategy.js';
import { createStrategy, strategyTraits } from '../federation/strategies/lookup.js';
import { ProtocolError } from '../protocol/tensors.js';
import type { PeerIdentity, RevocationChecker } from '../security/tls.js';
import type { ClientLimits } from './client-limits.js';
import { RoundAggregator } from './aggregation.js';
import { clientPlan } from './client-update.js';
import { summarizeEvals, type EvalMetrics, type EvalResult, type RoundRecord, type ServerSummary } from './records.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/logger.js';
import type { Participant } from './participant.js';
import type { ClientMessage, ParentSubCall, ServerSessionCall } from '../protocol/messages.js';
import type { TrunkPool } from './trunk-pool.js';
import { Admission } from './admission.js';
import { modePlugin, modesWith, type ServerMode } from './modes/lookup.js';
import type { ModePlugin } from './modes/mode.js';
import type { Capture } from '../privacy/capture.js';
import { RoundRunner } from './round-runner.js';
import { sendRoundKey } from './round-messages.js';
import { setupServer } from './trunk-setup.js';
import { overBudget, PrivacyLedger } from '../privacy/dp-budget.js';

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
  /** A mode not in the registry (an extension); `mode` still names it in records. */
  runner?: ModePlugin;
  /** `--capture`: keep received activations to measure the inversion attack (privacy/capture.ts). */
  capture?: Capture | null;
}

/**
 * The FL-GLM server: owns the trunk (as one or more replicas in worker threads), admits clients,
 * keeps the latest global client parts to re-sync (re)joining clients, and runs the federation's
 * rounds (round-runner.ts) once enough clients are in.
 */
export class SplitServer {
  readonly mode: ServerMode;
  private readonly runner: ModePlugin;
  private readonly cfg: ExperimentConfig;
  private readonly participants = new Map<string, Participant>();
  private pool!: TrunkPool;
  private readonly strategy: Strategy;
  private readonly aggregator: RoundAggregator;
  limits!: ClientLimits;
  private admission!: Admission;
  private rounds!: RoundRunner;
  private started = false;
  private startTimer: NodeJS.Timeout | null = null;
  private readonly log: Log;
  readonly done: Promise<ServerSummary>;
  private resolveDone!: (s: ServerSummary) => void;
  private rejectDone!: (e: Error) => void;

  constructor(private readonly o: ServerOptions) {
    this.cfg = o.cfg;
    const refused = federatedProblems(o.cfg);
    if (refused.length) throw new UserError(refused[0]);
    this.mode = o.mode ?? o.cfg.federation.mode;
    this.runner = o.runner ?? modePlugin(this.mode);
    const { strategy } = o.cfg.federation;
    if (strategyTraits(strategy.name).handoff && !this.runner.traits.handoff)
      throw new UserError(
        `federation.strategy ${strategy.name} hands the client parts on, which needs --mode ${modesWith('handoff').join(' or ')} (this server runs ${this.mode})`,
      );
    // privacy.target_epsilon: DP-FedAvg's ε is known before any client joins (dp.activations' once they have).
    const budget = overBudget(
      o.cfg,
      new PrivacyLedger(o.cfg).planned(o.cfg.federation.rounds, {}),
      'federation.rounds',
    );
    if (budget && !o.resume) throw new UserError(budget);
    this.strategy = createStrategy(strategy, o.cfg.federation.clients);
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
    const setup = setupServer({
      cfg: this.cfg,
      mode: this.runner,
      aggregator: this.aggregator,
      checkpointDir: this.o.checkpointDir,
      resume: this.o.resume,
      log: this.log,
    });
    ({ pool: this.pool, limits: this.limits } = setup);
    const onMetric = this.o.onMetric;
    if (onMetric)
      this.pool.onBusy = ({ key, ...r }) => {
        const [client, round, step] = key.split(':'); // the modes' keys: client:round:step (batch:round:step:group)
        onMetric({ type: 'trunk', ...r, client, round: Number(round), step: Number(step) });
      };
    this.rounds = new RoundRunner({
      cfg: this.cfg,
      modeName: this.mode,
      mode: this.runner,
      strategy: this.strategy,
      aggregator: this.aggregator,
      setup,
      checkpointDir: this.o.checkpointDir,
      log: this.log,
      onMetric: this.o.onMetric,
      onReceive: this.o.onReceive,
      capture: this.o.capture,
      participant: (id) => this.participants.get(id),
      drop: (s, round, e) => this.drop(s, round, e),
    });
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
  }

  /** gRPC Session handler: admission (identity, payload key, revocation, limits), then the plan. */
  onSession = (call: ServerSessionCall, peer: PeerIdentity): void => this.admission.accept(call, peer);

  /** A client was admitted: give it the plan and the current global parts, maybe start training. */
  private joined(s: Participant, lastRound: number): void {
    this.o.onMetric?.({ type: 'join', client: s.id, examples: s.numExamples, time: Date.now() });
    this.log(
      `client ${s.id} joined with ${s.numExamples} examples (last round ${lastRound}; ${this.participants.size}/${this.cfg.federation.clients} connected)`,
      { event: 'join', client: s.id, examples: s.numExamples, connected: this.participants.size },
    );
    s.send({ plan: { planJson: JSON.stringify(clientPlan(this.cfg, this.mode)) } });
    // A join key first: the global parts a (re)joining client gets are sealed like every tensor.
    sendRoundKey(s, this.rounds.completedRound);
    this.rounds.sendGlobal(s);
    this.maybeStart();
  }

  /** Clients connected now and the bytes they have queued unprocessed (metrics gauges). */
  connection(): { clients: number; queuedBytes: number } {
    const live = [...this.participants.values()].filter((p) => !p.closed);
    return { clients: live.length, queuedBytes: live.reduce((a, p) => a + p.inbox.queuedBytes, 0) };
  }

  /** A sub-server attached (hierarchical scale-out): one more trunk replica from the next round on. */
  onSubServer = (call: ParentSubCall, peer: PeerIdentity): void => {
    if (!this.runner.traits.subServers) {
      const modes = modesWith('subServers').join(' or ');
      call.emit('error', { code: 9, details: `sub-servers need --mode ${modes} (this server runs ${this.mode})` });
      return;
    }
    void this.pool.attachSubServer(call, peer, this.log).then((attached) => {
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
    const rounds = this.rounds;
    try {
      let evals: EvalResult[] = [];
      let evaluated = -1;
      const first = rounds.completedRound + 1;
      const refused = rounds.overBudget(f.rounds - rounds.completedRound, this.liveParticipants(first), 'this run');
      if (refused) {
        // Not DROPPED: a client retries after that, and a refused plan would refuse it again.
        for (const s of this.participants.values()) {
          s.send({ error: { code: 'REFUSED', message: refused } });
          s.close();
        }
        throw new UserError(refused);
      }
      let stopped: string | undefined;
      for (let round = first; round <= f.rounds; round++) {
        stopped = rounds.overBudget(1, this.liveParticipants(round), `round ${round}`) ?? undefined;
        if (stopped) break;
        await rounds.train(round, this.liveParticipants(round));
        if (evaluatesAfter(this.cfg, round)) {
          evals = await rounds.evaluate(round, this.liveParticipants(round));
          evaluated = round;
        }
      }
      if (stopped) this.log(`stopping after round ${rounds.completedRound}: ${stopped}`, { event: 'stop' });
      const last = rounds.completedRound;
      if (last > 0 && evaluated !== last && (last === f.rounds || stopped))
        evals = await rounds.evaluate(last, this.liveParticipants(last));
      for (const s of this.participants.values()) {
        s.send({ finished: { summaryJson: JSON.stringify({ history: rounds.history, eval: evals }) } });
        s.close();
      }
      return {
        mode: this.mode,
        strategy: f.strategy.name,
        rounds: f.rounds,
        steps: rounds.history.reduce((a, r) => a + r.steps, 0),
        tokens: rounds.history.reduce((a, r) => a + r.tokens, 0),
        history: rounds.history,
        eval: evals,
        eval_summary: summarizeEvals(evals),
        ...(rounds.ledger.accounts ? { privacy: rounds.ledger.current() } : {}),
        ...(stopped ? { stopped } : {}),
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
}
