import type { ExperimentConfig } from '../../config/schema.js';
import type { ClientUpdate, Params, RoundPlan } from '../../federation/strategies/strategy.js';
import type { TensorData } from '../../runtime/tensor.js';
import type { Participant } from '../participant.js';
import type { Replica } from '../replica.js';

export interface StepMessage {
  step: number;
  tensor: TensorData;
  loss: number;
  eval: boolean;
  labelCount: number;
}

/** What a server mode may do during one training round. The server implements it (`round.ts`). */
export interface RoundContext {
  readonly round: number;
  readonly cfg: ExperimentConfig;
  readonly participants: readonly Participant[];
  readonly replicas: readonly Replica[];
  /** The strategy's configuration of this round: turn order, hand-off, per-client instructions. */
  readonly plan: RoundPlan;
  /** The global client parts this round starts from (null before the first aggregation). */
  readonly startParams: Params | null;
  /**
   * Fresh payload key, the parts to start from (the relay hand-off; otherwise the client keeps the
   * global parts it has), the strategy's instructions and the round start: the client may begin.
   */
  openRound(s: Participant, startFrom?: Params, steps?: number): void;
  /** One client's local steps (default `local_steps`) against replica `replica`, each checked as it arrives. */
  serveSteps(s: Participant, replica: number, steps?: number): Promise<void>;
  expectStep(s: Participant, kind: 'activations' | 'tailGrad', step: number, name: string): Promise<StepMessage>;
  /** The client's round-end parameters, validated against the plan. */
  receiveParameters(s: Participant): Promise<ClientUpdate>;
  /** Drop a client from the round, telling it why (it may rejoin later). */
  drop(s: Participant, err: Error): void;
  /** Time a replica's work into the round's busy log. */
  timed<T>(replica: number, work: Promise<T>): Promise<T>;
  /** Learning rate for the next trunk optimizer step of a replica (advances its schedule). */
  nextTrunkLr(replica: number): number;
  recordStep(s: Participant, step: number, loss: number, tokens: number): void;
  /** With privacy.secure_aggregation: the round's one aggregate from its survivors (server/secure-collect.ts). */
  readonly secure?: (survivors: Participant[]) => Promise<ClientUpdate[]>;
}

/**
 * A server mode: how a round's clients are served by the trunk replicas. One file under
 * `src/server/modes/` plus one line in `registry.ts` plus its test.
 */
export interface ServerModeRunner {
  /** Trunk replicas the server starts with (sub-servers may add more). */
  replicaCount(cfg: ExperimentConfig): number;
  /** Trunk optimizer steps one replica takes per round (for its learning-rate schedule). */
  trunkStepsPerRound(cfg: ExperimentConfig, participants: number, replicas: number): number;
  /** Train one round; returns the updates to aggregate, in the order the strategy should see them. */
  train(ctx: RoundContext): Promise<ClientUpdate[]>;
}

/**
 * One turn after another against replica 0: each client's local steps in `order`; a failure drops
 * only that client. Returns those that finished their steps.
 */
export async function serveInTurns(ctx: RoundContext, order: readonly Participant[]): Promise<Participant[]> {
  const survivors: Participant[] = [];
  for (const s of order) {
    try {
      await ctx.serveSteps(s, 0);
      survivors.push(s);
    } catch (e) {
      ctx.drop(s, e as Error);
    }
  }
  return survivors;
}

/**
 * Round-end parameters of every client that finished its steps; failures drop only that client.
 * With secure aggregation, the one aggregate the server may see instead.
 */
export async function collectUpdates(ctx: RoundContext, survivors: Participant[]): Promise<ClientUpdate[]> {
  if (ctx.secure) return ctx.secure(survivors);
  const updates = await Promise.all(
    survivors.map((s) =>
      ctx.receiveParameters(s).catch((e: Error) => {
        ctx.drop(s, e);
        return null;
      }),
    ),
  );
  return updates.filter((u): u is ClientUpdate => u !== null);
}
