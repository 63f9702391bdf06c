// A strategy as one plug-in with two sides, looked up by name from the plan on both: the server
// half (`Strategy`: configure a round, aggregate, state), an optional client half (hooks the
// client's trainer calls at the start of a round, on every step's gradient, on received entries
// and at round end), an optional hook for trunk replicas, the options it reads under
// `federation.strategy` (the config schema is built from them) and its traits (what the config may
// combine it with). Neither side ever learns the strategy's name: behaviour is handed over.
//
// This folder is a layer below src/config (test/architecture/layers.test.ts), so the schema takes
// names, options and traits from `registry.ts` and a strategy is one file plus one registry line.

import type { z } from 'zod';
import type { ClientRoundConfig, Params, Strategy } from './strategy.js';

export interface StrategyTraits {
  /**
   * The aggregate needs nothing but the sample-weighted mean of the updates (and server state),
   * which is all secure aggregation computes; otherwise what it needs instead (for the config error).
   */
  weightedMean: true | { needs: string };
  /** The aggregate may stay hidden from the server (privacy.hide_aggregate): the server takes no step on it. */
  hideable: boolean;
  /**
   * Clients take turns, each from the parts and optimizer state the previous one finished with: one
   * model, one optimizer, one learning-rate schedule across the federation (needs a mode with the
   * `handoff` trait; the parts travel as absolute float32 values).
   */
  handoff: boolean;
}

/** A training round begins: the live trainable parts, and a copy of them as the round began (made once, shared). */
export interface RoundStart {
  params: Params;
  start(): Params;
  config: ClientRoundConfig;
}

/** What a half may do to training where it runs (a client's parts, or a trunk replica). */
export interface GradientHook {
  startRound?(r: RoundStart): void;
  /** The step's raw gradient, corrected in place before clipping; `params` are the values it was taken at. */
  correctGradient?(grads: Params, params: Params): void;
}

/** The client half: gradient hooks plus what travels beside the parts. */
export interface ClientHalf extends GradientHook {
  /** A received entry that is not a parameter: the parameter whose size it has, or undefined when it is not this half's. */
  incoming?(name: string): string | undefined;
  receive?(name: string, data: Float32Array): void;
  /** Round end: entries to upload beside the parts (the server half's `uploadSpec` names them). */
  finishRound?(params: Params): [string, Float32Array][];
}

export type OptionsOf<S extends z.ZodRawShape> = z.output<z.ZodObject<S>>;

export interface StrategyPlugin<S extends z.ZodRawShape = z.ZodRawShape> {
  /**
   * Keys it reads under federation.strategy, with their defaults. A key several strategies read is
   * one exported schema they share (the config refuses two different schemas under one key).
   */
  options: S;
  traits: StrategyTraits;
  /** `clients`: the federation's size N. */
  server(o: OptionsOf<S>, federation: { clients: number }): Strategy;
  client?(o: OptionsOf<S>): ClientHalf;
  /** On every trunk replica when there are several (hierarchical mode), which are averaged like client parts. */
  trunk?(o: OptionsOf<S>): GradientHook;
  /** Its options checked against the federation, each problem naming its key under federation.strategy and the fix. */
  check?(o: OptionsOf<S>, federation: { clients: number }): { key: string; message: string }[];
}

/** Types a plug-in's halves by its options. */
export const defineStrategy = <S extends z.ZodRawShape>(p: StrategyPlugin<S>): StrategyPlugin<S> => p;

/** Sample-weighted averaging strategies: secure aggregation can compute them. */
export const MEAN_TRAITS: StrategyTraits = { weightedMean: true, hideable: false, handoff: false };
