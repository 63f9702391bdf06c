// What a server mode sees of a round, and what a mode is. A mode says what happens in a round's
// steps (which client, which replica, in which order, grouped how); the server's step link moves
// and checks the bytes and its trunk handles run the replicas. This folder is a layer below
// src/config (test/architecture/layers.test.ts): the schema takes the modes' names, options and
// traits from `registry.ts`, so a mode is one file plus one registry line.

import type { z } from 'zod';
import type { OptionsOf } from '../../federation/strategies/plugin.js';
import type { ClientUpdate, Params, RoundPlan } from '../../federation/strategies/strategy.js';
import type { TensorData } from '../../runtime/tensor.js';

/** A client of the round, as a mode handles it. */
export interface RoundClient {
  readonly id: string;
  /** Examples it reported at join. */
  readonly numExamples: number;
}

export interface TailGrad {
  tensor: TensorData;
  loss: number;
  labelCount: number;
}

/**
 * The server's end of one client's step messages: every tensor it returns was checked (round,
 * step, name, dtype, shape, size, finite) before a mode sees it, and every tensor it sends is
 * encoded for that client (payload key, wire dtype, chunks).
 */
export interface StepLink {
  /** The client's h_A for `step` (its rows count as examples it trained on this round). */
  activations(step: number): Promise<TensorData>;
  sendTrunkOut(step: number, hB: TensorData): void;
  tailGrad(step: number): Promise<TailGrad>;
  /** dL/dh_A; with the trunk's gradient norm the client clips jointly and answers `stepDone`, with null it clips its own. */
  sendHeadGrad(step: number, dhA: TensorData, trunkNorm: number | null): void;
  /** The client's gradient norm of its parts after `step` (joint clipping). */
  stepDone(step: number): Promise<number>;
  /** Lockstep mode: the client's flattened n_i x part gradient of `step` (masked: int32 ring words under its pad). */
  partGrad(step: number, masked: boolean): Promise<TensorData>;
  /** Lockstep mode: the sum of the contributors' part gradients, with their labelled tokens. */
  sendPartGradSum(step: number, sum: TensorData, labelTotal: number, contributors: string[]): void;
}

/** One trunk replica during a training round: its work is timed into the round's busy log. */
export interface TrunkOps {
  /** h_A -> h_B, keeping h_A for the backward of `key`. */
  forward(key: string, hA: TensorData): Promise<TensorData>;
  backward(key: string, dhB: TensorData): Promise<{ dhA: TensorData; gradNorm: number }>;
  /** One optimizer step at the replica's scheduled learning rate, clipped by the model's global norm `norm`. */
  apply(key: string, norm: number): Promise<void>;
  /** Forget what is kept for `key` (its client was dropped mid-step). */
  drop(key: string): Promise<void>;
}

/** What a server mode may do during one training round. The server implements it (`round.ts`). */
export interface RoundContext {
  readonly round: number;
  readonly participants: readonly RoundClient[];
  /** Trunk replicas this round (local workers and attached sub-servers). */
  readonly replicaCount: number;
  /** The strategy's configuration of this round: turn order, hand-off, per-client instructions. */
  readonly plan: RoundPlan;
  /** The global client parts this round starts from (null before the first aggregation). */
  readonly startParams: Params | null;
  /**
   * Fresh payload key, the parts to start from (a hand-off; otherwise the client keeps the global
   * parts it has), the strategy's instructions and the round start: the client may begin.
   */
  openRound(s: RoundClient, o?: { from?: Params; steps?: number }): void;
  link(s: RoundClient): StepLink;
  trunk(replica: number): TrunkOps;
  /** The client's round-end parameters, validated against the plan. */
  receiveParameters(s: RoundClient): Promise<ClientUpdate>;
  /** Drop a client from the round, telling it why (it may rejoin later). */
  drop(s: RoundClient, err: Error): void;
  recordStep(s: RoundClient, step: number, loss: number, tokens: number): void;
  /** With privacy.secure_aggregation: the round's one aggregate from its survivors (server/secure-collect.ts). */
  secure?(survivors: RoundClient[]): Promise<ClientUpdate[]>;
}

export interface ModeTraits {
  /** Serves a hand-off strategy's turns (each client from the previous one's parts). */
  handoff: boolean;
  /** Takes trunk replicas from sub-servers (`flglm server --role sub`). */
  subServers: boolean;
  /** Every step, clients exchange their client-part gradients through the server and step with the mean (lockstep). */
  averagesPartGrads?: boolean;
}

/** The federation section as a mode reads it: the keys every mode has, and its own options. */
export type ModeSettings<S extends z.ZodRawShape> = OptionsOf<S> & { local_steps: number; client_timeout_ms: number };

/** A server mode: how a round's clients are served by the trunk replicas. */
export interface ModePlugin<S extends z.ZodRawShape = z.ZodRawShape> {
  /** Keys it reads under `federation`, with their defaults (shared keys: one exported schema). */
  options: S;
  traits: ModeTraits;
  /** Trunk replicas the server starts with (sub-servers may add more). */
  replicaCount(f: ModeSettings<S>): number;
  /** Trunk optimizer steps one replica takes per round (for its learning-rate schedule). */
  trunkStepsPerRound(f: ModeSettings<S>, participants: number, replicas: number): number;
  /** Train one round; returns the updates to aggregate, in the order the strategy should see them. */
  train(ctx: RoundContext, f: ModeSettings<S>): Promise<ClientUpdate[]>;
}

/** Types a mode's functions by its options. */
export const defineMode = <S extends z.ZodRawShape>(m: ModePlugin<S>): ModePlugin<S> => m;

/**
 * One split step of `s` against `replica`, clipped jointly: the client and the trunk are one model,
 * so both clip by one global norm sqrt(|g_trunk|^2 + |g_client|^2), as centralized training does.
 * The client learns the trunk's norm with dL/dh_A and sends its own back before the trunk steps.
 */
export async function jointStep(ctx: RoundContext, s: RoundClient, replica: number, step: number): Promise<void> {
  const link = ctx.link(s);
  const trunk = ctx.trunk(replica);
  const key = `${s.id}:${ctx.round}:${step}`;
  const hA = await link.activations(step);
  link.sendTrunkOut(step, await trunk.forward(key, hA));
  try {
    const g = await link.tailGrad(step);
    const { dhA, gradNorm } = await trunk.backward(key, g.tensor);
    link.sendHeadGrad(step, dhA, gradNorm);
    const clientNorm = await link.stepDone(step);
    await trunk.apply(key, Math.hypot(gradNorm, clientNorm));
    ctx.recordStep(s, step, g.loss, hA.shape[0] * hA.shape[1]);
  } catch (e) {
    await trunk.drop(key).catch(() => {});
    throw e;
  }
}

/** `steps` joint steps of one client against one replica. */
export async function serveSteps(ctx: RoundContext, s: RoundClient, replica: number, steps: number): Promise<void> {
  for (let step = 1; step <= steps; step++) await jointStep(ctx, s, replica, step);
}

/** `work` for each client in `order`, one after another; a failure drops only that client. Returns those that finished. */
export async function inTurns(
  ctx: RoundContext,
  order: readonly RoundClient[],
  work: (s: RoundClient) => Promise<void>,
): Promise<RoundClient[]> {
  const survivors: RoundClient[] = [];
  for (const s of order) {
    try {
      await work(s);
      survivors.push(s);
    } catch (e) {
      ctx.drop(s, e as Error);
    }
  }
  return survivors;
}

/** One turn after another against replica 0: each client's `steps` local steps in `order`. */
export const serveInTurns = (ctx: RoundContext, order: readonly RoundClient[], steps: number) =>
  inTurns(ctx, order, (s) => serveSteps(ctx, s, 0, steps));

/**
 * Round-end parameters of every client that finished its steps; failures drop only that client.
 * With secure aggregation, the one aggregate the server may see instead.
 */
export async function collectUpdates(ctx: RoundContext, survivors: RoundClient[]): Promise<ClientUpdate[]> {
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
