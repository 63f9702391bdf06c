import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunMeta, RunRecord } from '../../src/report/run-view.js';

/** metrics.jsonl records of a simulated run: `clients` clients, `rounds` rounds of `steps` steps, as the server and clients write them. */
export function simulatedRecords(o: {
  clients: number;
  rounds: number;
  steps: number;
  t0?: number;
  secure?: boolean;
}): RunRecord[] {
  const ids = Array.from({ length: o.clients }, (_, i) => `client-${i}`);
  let t = o.t0 ?? 1_700_000_000_000,
    tokens = 0;
  const out: RunRecord[] = ids.map((client) => ({ type: 'join', client, time: t }));
  for (let round = 1; round <= o.rounds; round++) {
    for (let step = 1; step <= o.steps; step++)
      for (const [i, client] of ids.entries()) {
        const loss = 5 * Math.exp(-0.08 * ((round - 1) * o.steps + step)) + 0.2 + 0.01 * i;
        const spans: Record<string, [number, number]> = {};
        let at = t;
        for (const [phase, ms] of [
          ['head_forward', 4],
          ['wait_trunk_forward', 9],
          ['tail_step', 5],
          ['wait_trunk_backward', 11],
          ['head_backward', 6],
          ['optimizer', 2],
        ] as const) {
          spans[phase] = [at, at + ms];
          at += ms;
        }
        out.push({ type: 'timeline', client, round, step, spans, end: at });
        out.push({ type: 'trunk', replica: 0, op: 'forward', client, round, step, start: t + 5, end: t + 12 });
        out.push({ type: 'trunk', replica: 0, op: 'backward', client, round, step, start: t + 20, end: t + 30 });
        tokens += 64;
        out.push({ type: 'step', round, step, client, loss, tokens: 64, time: at });
        t = at + 1;
      }
    out.push({
      type: 'round',
      round,
      clients: ids,
      dropped: [],
      wall_s: 0.5 + 0.01 * round,
      steps: o.steps * o.clients,
      train_loss: 1,
      tokens: 64 * o.steps * o.clients,
      bytes_up: 2 ** 20 * o.clients,
      bytes_down: 2 ** 21 * o.clients,
      bytes_by_client: Object.fromEntries(ids.map((c) => [c, [2 ** 20, 2 ** 21]])),
      round_end: o.secure ? { secure_aggregation: { keys: 0.01, shares: 0.02, masked: 0.03, reveal: 0.01 } } : {},
      tokens_seen: tokens,
      time: t,
    });
    out.push({
      type: 'eval',
      round,
      tokens_seen: tokens,
      loss: 2 / round,
      accuracy: 1 - 0.5 / round,
      examples: 8,
      time: t,
    });
  }
  return out;
}

export const META: RunMeta = {
  name: 'sim',
  mode: 'sequential',
  strategy: 'fedavg',
  rounds: 4,
  clients: 2,
  state: 'finished',
};

/** A run folder as `flglm run` leaves it mid-run: config, status, the records so far. */
export function runFolder(records: Record<string, unknown>[], clients = 2): string {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-dash-'));
  writeFileSync(
    join(dir, 'config.yaml'),
    `name: dash\nmodel: {preset: tiny}\nfederation: {clients: ${clients}, rounds: 6, mode: sequential}\n`,
  );
  writeFileSync(join(dir, 'status.json'), JSON.stringify({ state: 'running', pid: process.pid, started: '' }));
  writeFileSync(join(dir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r) + '\n').join(''));
  return dir;
}
