import { join } from 'node:path';
import { checkpointsAfter, evaluatesAfter, peftOf, quantizedBaseOf } from '../config/experiment.js';
import type { ExperimentConfig } from '../config/schema.js';
import type { Params, Strategy } from '../federation/strategies/strategy.js';
import type { Capture } from '../privacy/capture.js';
import { overBudget, PrivacyLedger } from '../privacy/dp-budget.js';
import type { ClientMessage } from '../protocol/messages.js';
import type { Log } from '../util/logger.js';
import type { RoundAggregator } from './aggregation.js';
import { evaluationPass } from './eval-pass.js';
import type { ModePlugin } from './modes/mode.js';
import type { Participant } from './participant.js';
import { roundRecord, roundSummaryLine } from './round-record.js';
import { Round } from './round.js';
import { sendHidden, sendParams } from './round-messages.js';
import { summarizeEvals, trafficMeter, type EvalResult, type RoundRecord } from './records.js';
import type { HiddenAggregate } from './secure-collect.js';
import { saveServerCheckpoint } from './server-checkpoint.js';
import type { ServerSetup } from './trunk-setup.js';

export interface RoundRunnerDeps {
  cfg: ExperimentConfig;
  /** The mode's name as records and checkpoints give it, and its plug-in. */
  modeName: string;
  mode: ModePlugin;
  strategy: Strategy;
  aggregator: RoundAggregator;
  setup: ServerSetup;
  checkpointDir?: string | null;
  log: Log;
  onMetric?: (record: Record<string, unknown>) => void;
  onReceive?: (clientId: string, message: ClientMessage) => void;
  capture?: Capture | null;
  /** The connected client with this id, if it still is. */
  participant(id: string): Participant | undefined;
  drop(s: Participant, round: number, err: Error): void;
}

/**
 * The federation's rounds: a training round (the mode serves its steps, the strategy aggregates,
 * the result goes out, replicas are averaged, a checkpoint is written) and an evaluation pass, and
 * where the federation stands between them (global client parts, history, tokens seen).
 */
export class RoundRunner {
  completedRound = 0;
  tokensSeen = 0;
  history: RoundRecord[] = [];
  private globalClientParams: Params | null = null;
  private hidden: HiddenAggregate | null = null;
  /** Differential privacy's spending so far (rebuilt from the history on resume). */
  readonly ledger: PrivacyLedger;

  constructor(private readonly d: RoundRunnerDeps) {
    this.ledger = new PrivacyLedger(d.cfg);
    const p = d.setup.progress;
    if (!p) return;
    ({ round: this.completedRound, history: this.history, tokensSeen: this.tokensSeen } = p);
    this.globalClientParams = p.globalClientParams;
    this.hidden = p.hidden ?? null;
    d.strategy.restore(p.strategyState);
    this.ledger.replay(this.history);
  }

  /**
   * privacy.target_epsilon: why `rounds` more rounds with these clients must not run, or null. A
   * client's round is taken as local_steps, or as many as its last round took if that was more.
   */
  overBudget(rounds: number, participants: readonly Participant[], what: string): string | null {
    const last = this.history.at(-1)?.privacy?.client_steps ?? {};
    const steps = (id: string) => Math.max(this.d.cfg.federation.local_steps, last[id]?.steps ?? 0);
    const plan = Object.fromEntries(participants.map((s) => [s.id, { steps: steps(s.id), examples: s.numExamples }]));
    return overBudget(this.d.cfg, this.ledger.planned(rounds, plan), what);
  }

  /** The current global client parts (or the hidden aggregate, which only clients can open). */
  sendGlobal(s: Participant, round = this.completedRound, deltas: Map<string, Uint16Array> | null = null): void {
    if (this.hidden) sendHidden(s, this.hidden);
    else if (this.globalClientParams) sendParams(s, round, this.globalClientParams, deltas);
  }

  async train(round: number, participants: Participant[]): Promise<void> {
    const { cfg, setup, strategy } = this.d;
    const f = cfg.federation;
    const t0 = performance.now();
    if (participants.length < f.min_clients)
      throw new Error(`round ${round}: ${participants.length} clients connected, min_clients is ${f.min_clients}`);
    const { pool } = setup;
    await pool.startRound(f.rounds * this.d.mode.trunkStepsPerRound(f, participants.length, pool.replicas.length));
    const traffic = trafficMeter(participants);
    const clients = participants.map((s) => ({ id: s.id, weight: s.numExamples }));
    const ctx = new Round(round, participants, {
      ...this.deps(),
      partSpec: setup.partSpec,
      plan: strategy.configureRound(round, clients, this.globalClientParams),
      startParams: this.globalClientParams,
      deltaBase: this.d.aggregator.deltaBase(this.globalClientParams),
      trunk: (i) => pool.trunk(i),
      capture: this.d.capture,
    });
    const updates = await this.d.mode.train(ctx, f);
    // A hand-off may give a client several turns or none in a round: count clients, not updates.
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
      : this.d.aggregator.aggregate(round, updates, this.globalClientParams);
    this.globalClientParams = next;
    // Averaging: every client continues from the new global parts. A hand-off: the next round's
    // first client gets them with its turn, so the broadcast is needed only where every client must
    // hold them (an evaluation, a checkpoint, the end).
    const needAll = !ctx.plan.handoff || evaluatesAfter(cfg, round) || checkpointsAfter(cfg, round);
    const aggregate_s = lap();
    if (needAll)
      for (const id of finished) {
        const s = this.d.participant(id);
        if (s) this.sendGlobal(s, round, deltas);
      }
    const broadcast_s = lap();
    await pool.average();
    const replicas_s = lap();
    this.tokensSeen += ctx.tokens;
    const ends = { aggregate_s, broadcast_s, replicas_s };
    const record = roundRecord({ round, ctx, finished, traffic: traffic(), busy: pool.busy.take(), ends, t0 });
    if (this.ledger.accounts) {
      // Steps as the server counted them: rows of h_A, one batch a step, dropped clients' included.
      const B = cfg.data.batch_size;
      const spend = (s: Participant) => ({ steps: s.examplesThisRound / B, examples: s.numExamples });
      record.privacy = this.ledger.spend(Object.fromEntries(participants.map((s) => [s.id, spend(s)])));
    }
    this.history.push(record);
    this.completedRound = round;
    // The checkpoint holds the history up to this round (its own record says checkpoint_s 0).
    await this.checkpoint(round);
    record.round_end.checkpoint_s = lap();
    this.d.onMetric?.({ type: 'round', ...record, tokens_seen: this.tokensSeen, time: Date.now() });
    const [line, fields] = roundSummaryLine(record, f.rounds, pool.replicas.length);
    this.d.log(line, fields);
  }

  /** Every connected client evaluates the current model on its held-out data, through the trunk. */
  async evaluate(round: number, participants: Participant[]): Promise<EvalResult[]> {
    const t0 = performance.now();
    const { pool } = this.d.setup;
    const evals = await evaluationPass(round, participants, {
      ...this.deps(),
      forward: (i, key, hA) => pool.forward(i, key, hA),
    });
    const summary = summarizeEvals(evals);
    this.d.onMetric?.({
      type: 'eval',
      round,
      tokens_seen: this.tokensSeen,
      ...summary,
      clients: evals,
      wall_s: (performance.now() - t0) / 1000,
      time: Date.now(),
    });
    if (summary.examples)
      this.d.log(
        `eval after round ${round}: loss ${summary.loss.toFixed(4)}, accuracy ${summary.accuracy.toFixed(4)} on ${summary.examples} examples`,
        { event: 'eval', round, loss: summary.loss, accuracy: summary.accuracy, examples: summary.examples },
      );
    return evals;
  }

  /** What a round and an evaluation pass share. */
  private deps() {
    const { cfg, setup } = this.d;
    return {
      cfg,
      model: setup.model,
      limits: setup.limits,
      replicaCount: setup.pool.replicas.length,
      drop: this.d.drop,
      onReceive: this.d.onReceive,
      onMetric: this.d.onMetric,
    };
  }

  private async checkpoint(round: number): Promise<void> {
    const { cfg, setup, checkpointDir } = this.d;
    if (!checkpointDir || !checkpointsAfter(cfg, round)) return;
    // The frozen trunk left in the base model folder: the replica sends only what trains.
    const state = await setup.pool.replicas[0].getState(!setup.trunkInBase);
    saveServerCheckpoint(
      join(checkpointDir, 'latest'),
      state,
      {
        model: setup.model,
        peft: peftOf(cfg),
        mode: this.d.modeName,
        strategy: cfg.federation.strategy.name,
        baseModel: cfg.model.hf_path ?? undefined,
        frozen: setup.trunkInBase ?? [],
        quantizedBase: quantizedBaseOf(cfg),
      },
      {
        round,
        trunkSteps: setup.pool.trunkSteps,
        history: this.history,
        tokensSeen: this.tokensSeen,
        globalClientParams: this.globalClientParams,
        strategyState: this.d.strategy.state(),
        hidden: this.hidden,
      },
    );
  }
}
