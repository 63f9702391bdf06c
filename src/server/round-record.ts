import type { LogFields } from '../util/logger.js';
import type { RoundRecord } from './records.js';
import type { Round } from './round.js';

/** A training round's record (metrics.jsonl, the summary, checkpoints); checkpoint_s is filled in once it is written. */
export function roundRecord(o: {
  round: number;
  ctx: Round;
  finished: string[];
  traffic: Pick<RoundRecord, 'bytes_down' | 'bytes_up' | 'bytes_by_client'>;
  /** The replicas' busy and overlapping seconds. */
  busy: [number, number];
  /** Seconds of the round's end: aggregating, sending the result, averaging replicas. */
  ends: { aggregate_s: number; broadcast_s: number; replicas_s: number };
  t0: number;
}): RoundRecord & { round_end: NonNullable<RoundRecord['round_end']> } {
  const { ctx } = o;
  const [busy, overlap] = o.busy;
  return {
    round: o.round,
    clients: o.finished,
    dropped: [...ctx.dropped],
    wall_s: (performance.now() - o.t0) / 1000,
    steps: ctx.losses.length,
    train_loss: ctx.losses.length ? ctx.losses.reduce((a, b) => a + b, 0) / ctx.losses.length : NaN,
    tokens: ctx.tokens,
    ...o.traffic,
    replica_busy_s: busy,
    replica_overlap_s: overlap,
    round_end: {
      ...o.ends,
      checkpoint_s: 0,
      ...(ctx.secure
        ? {
            secure_aggregation_s: Object.values(ctx.securePhases).reduce((a, s) => a + s, 0),
            secure_aggregation: { ...ctx.securePhases },
          }
        : {}),
    },
  };
}

/** The round's log line and its structured fields. */
export function roundSummaryLine(r: RoundRecord, rounds: number, replicas: number): [string, LogFields] {
  const parallel =
    replicas > 1
      ? `, replicas busy ${r.replica_busy_s.toFixed(1)} s (${r.replica_overlap_s.toFixed(1)} s in parallel)`
      : '';
  const dropped = r.dropped.length ? `, dropped ${r.dropped.join(', ')}` : '';
  return [
    `round ${r.round}/${rounds}: ${r.clients.length} clients, loss ${r.train_loss.toFixed(4)}, ${r.wall_s.toFixed(1)} s${parallel}${dropped}`,
    {
      event: 'round',
      round: r.round,
      clients: r.clients.length,
      loss: r.train_loss,
      wall_s: r.wall_s,
      steps: r.steps,
      dropped: r.dropped.join(',') || undefined,
    },
  ];
}
