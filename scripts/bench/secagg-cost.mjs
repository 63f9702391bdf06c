#!/usr/bin/env node
// `npm run bench -- secagg-cost [--repeats 3] [--rounds 6] [--steps 2] [--clients 3]`
//
// What secure aggregation adds to a round, measured side by side: the same federation (base
// configs/quickstart.yaml: `small`, 8 x 128, mTLS + payload encryption, loopback; hierarchical
// FedAvg, the mode secure aggregation works with) run plain, with privacy.secure_aggregation, and with
// secure aggregation + privacy.hide_aggregate, interleaved (plain, secure, hidden, plain, ...) so a
// noisy neighbour hurts all three alike. Per run: the median wall time of rounds 2.. (round 1
// compiles), and from the round records the server's secure-aggregation exchanges, phase by phase.
// Few local steps per round is the hard case: the exchanges cost the same whatever a round's length.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { mean, median, root, runExperiment, writeResult } from './common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const repeats = Number(arg('--repeats', '3'));
const rounds = Number(arg('--rounds', '6'));
const steps = Number(arg('--steps', '2'));
const clients = Number(arg('--clients', '3'));
const base = parse(readFileSync(join(root, 'configs', 'quickstart.yaml'), 'utf8'));

const setups = [
  { name: 'plain', privacy: {} },
  { name: 'secure aggregation', privacy: { secure_aggregation: { enabled: true } } },
  {
    name: 'secure aggregation + hide_aggregate',
    privacy: { secure_aggregation: { enabled: true }, hide_aggregate: true },
  },
];

const runs = new Map(setups.map((s) => [s.name, []]));
for (let r = 0; r < repeats; r++) {
  for (const setup of setups) {
    const cfg = structuredClone(base);
    cfg.name = `secagg-cost-${r}`;
    cfg.baseline = 'none';
    cfg.federation = {
      ...cfg.federation,
      clients,
      min_clients: clients,
      mode: 'hierarchical',
      strategy: { name: 'fedavg' },
      rounds,
      local_steps: steps,
      checkpoint_every_rounds: rounds,
    };
    cfg.eval = { ...cfg.eval, every_rounds: rounds, max_batches: 1 };
    cfg.privacy = setup.privacy;
    const out = mkdtempSync(join(tmpdir(), 'flglm-secagg-cost-'));
    const { metrics } = await runExperiment(stringify(cfg), out);
    rmSync(out, { recursive: true, force: true });
    const recs = metrics.filter((m) => m.type === 'round' && m.round >= 2);
    const run = {
      round_s: median(recs.map((m) => m.wall_s)),
      mib_per_round: mean(recs.map((m) => (m.bytes_up + m.bytes_down) / 2 ** 20)),
      secure_aggregation_s:
        recs[0].round_end.secure_aggregation_s === undefined
          ? null
          : mean(recs.map((m) => m.round_end.secure_aggregation_s)),
      phases: recs[0].round_end.secure_aggregation
        ? Object.fromEntries(
            Object.keys(recs[0].round_end.secure_aggregation).map((k) => [
              k,
              mean(recs.map((m) => m.round_end.secure_aggregation[k] ?? 0)),
            ]),
          )
        : null,
    };
    runs.get(setup.name).push(run);
    console.error(
      `${setup.name} (repeat ${r + 1}): median round ${run.round_s.toFixed(2)} s${run.secure_aggregation_s === null ? '' : `, secure aggregation ${run.secure_aggregation_s.toFixed(3)} s`}`,
    );
  }
}
const plain = runs.get('plain');
const rows = setups.map((s) => {
  const rs = runs.get(s.name);
  // Paired: each repeat's run against the plain run next to it.
  const ratios = rs.map((r, i) => r.round_s / plain[i].round_s);
  return {
    setup: s.name,
    round_s: rs.map((r) => +r.round_s.toFixed(3)),
    median_round_s: +median(rs.map((r) => r.round_s)).toFixed(3),
    x_plain: ratios.map((x) => +x.toFixed(3)),
    median_x_plain: +median(ratios).toFixed(3),
    mib_per_round: +mean(rs.map((r) => r.mib_per_round)).toFixed(1),
    secure_aggregation_s:
      rs[0].secure_aggregation_s === null ? null : +mean(rs.map((r) => r.secure_aggregation_s)).toFixed(3),
    phases: rs[0].phases
      ? Object.fromEntries(Object.keys(rs[0].phases).map((k) => [k, +mean(rs.map((r) => r.phases[k])).toFixed(3)]))
      : null,
  };
});
console.log(JSON.stringify(rows, null, 2));
// One result per round length (the render shows each): secagg-cost.json for 2 steps, secagg-cost-13steps.json ...
writeResult(steps === 2 ? 'secagg-cost' : `secagg-cost-${steps}steps`, {
  command: `npm run bench -- secagg-cost --repeats ${repeats} --rounds ${rounds} --steps ${steps} --clients ${clients}`,
  clients,
  rounds,
  steps_per_round: steps,
  rows,
});
