import type { PrivacyRecord } from '../privacy/dp-budget.js';
import type { ServerMode } from './modes/lookup.js';

/** What the server records per round and per evaluation (metrics.jsonl, summaries, checkpoints). */
export interface RoundRecord {
  round: number;
  clients: string[];
  dropped: string[];
  wall_s: number;
  /** Training steps served this round (all clients), their mean loss and their tokens. */
  steps: number;
  train_loss: number;
  tokens: number;
  /** Tensor bytes the server sent to / received from the round's clients (payload, before TLS). */
  bytes_down: number;
  bytes_up: number;
  /** The same per client: [up, down]. */
  bytes_by_client?: Record<string, [number, number]>;
  /** Seconds the trunk replicas computed, summed, and how much of that ran at the same time. */
  replica_busy_s: number;
  replica_overlap_s: number;
  /**
   * Server seconds of the round's end once every update is in: aggregating, sending the result,
   * averaging trunk replicas, checkpointing (part of what makes an extra round cost more than its
   * steps; the rest is on the wire and in the clients: `npm run bench -- round-cost`).
   */
  /** Where a round's end goes; secure_aggregation_s: the secure-aggregation exchanges (before aggregating). */
  round_end?: {
    aggregate_s: number;
    broadcast_s: number;
    replicas_s: number;
    checkpoint_s: number;
    secure_aggregation_s?: number;
    secure_aggregation?: Record<string, number>;
  };
  /** With differential privacy: ε so far (privacy/dp-budget.ts). */
  privacy?: PrivacyRecord;
}

/** What a server reports when its federation finishes (`--summary-json`; the launcher reads it). */
export interface ServerSummary {
  mode: ServerMode;
  strategy: string;
  rounds: number;
  /** Training steps served and tokens trained on, over all rounds and clients. */
  steps: number;
  tokens: number;
  history: RoundRecord[];
  /** Each client's last evaluation, and their example-weighted mean. */
  eval: EvalResult[];
  eval_summary: { loss: number; accuracy: number; examples: number };
  /** The server process's peak resident memory, trunk workers included (MiB; `flglm server` adds it). */
  peak_rss_mib?: number;
  /** With differential privacy: ε spent by the whole run. */
  privacy?: PrivacyRecord;
  /** Why the federation ended before federation.rounds (privacy.target_epsilon, the leakage monitor). */
  stopped?: string;
}

export interface EvalMetrics {
  loss: number;
  accuracy: number;
  examples: number;
  perplexity?: number;
}
export interface EvalResult {
  clientId: string;
  eval?: EvalMetrics;
}

/** Bytes sent to and received from `participants` from now until the returned function is called. */
export function trafficMeter(
  participants: readonly { id: string; bytesSent: number; bytesReceived: number }[],
): () => { bytes_down: number; bytes_up: number; bytes_by_client: Record<string, [number, number]> } {
  const before = participants.map((p) => [p.bytesSent, p.bytesReceived]);
  return () => ({
    bytes_down: participants.reduce((a, p, i) => a + p.bytesSent - before[i][0], 0),
    bytes_up: participants.reduce((a, p, i) => a + p.bytesReceived - before[i][1], 0),
    bytes_by_client: Object.fromEntries(
      participants.map((p, i) => [p.id, [p.bytesReceived - before[i][1], p.bytesSent - before[i][0]]]),
    ),
  });
}

/** Example-weighted loss and accuracy over the clients' evaluations. */
export function summarizeEvals(evals: EvalResult[]): { loss: number; accuracy: number; examples: number } {
  let n = 0,
    loss = 0,
    acc = 0;
  for (const e of evals) {
    if (!e.eval || !(e.eval.examples > 0)) continue;
    n += e.eval.examples;
    loss += e.eval.loss * e.eval.examples;
    acc += e.eval.accuracy * e.eval.examples;
  }
  return n ? { loss: loss / n, accuracy: acc / n, examples: n } : { loss: NaN, accuracy: NaN, examples: 0 };
}
