// What one federated round costs beyond its training steps: the same budget of client steps cut
// into few long rounds and many short ones, through the real launcher (server and client processes,
// mTLS + payload encryption on loopback). Extra-round cost = (wall(many) - wall(few)) / (extra rounds).
// Round records also give the bytes each round moves and the server-side phases of a round end.
//
// Usage: npm run bench -- round-cost [setups=hierarchical/fedavg,sequential/relay] [budget=24] [few=2] [many=12] [repeats=2]
//        [base=configs/quickstart.yaml] [set=KEY=VALUE;...]
//   a setup is MODE/STRATEGY, optionally |KEY=VALUE|... config overrides for that setup only
//   (e.g. hierarchical/fedavg|federation.update_encoding=float16-delta).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { mean, root, runExperiment, writeResult } from './common.mjs';

const setups = (process.argv[2] ?? 'hierarchical/fedavg,sequential/relay').split(',');
const budget = Number(process.argv[3] ?? 24);
const few = Number(process.argv[4] ?? 2);
const many = Number(process.argv[5] ?? 12);
const repeats = Number(process.argv[6] ?? 2);
const baseFile = process.argv[7] ?? join(root, 'configs', 'quickstart.yaml');
const sets = (process.argv[8] ?? '').split(';').filter(Boolean);
const base = parse(readFileSync(baseFile, 'utf8'));

function configFor(setup, rounds) {
  const cfg = structuredClone(base);
  const [modeStrategy, ...overrides] = setup.split('|');
  const [mode, strategy] = modeStrategy.split('/');
  cfg.baseline = 'none';
  cfg.federation = {
    ...cfg.federation,
    mode,
    strategy: { ...(cfg.federation.strategy ?? {}), name: strategy },
    rounds,
    local_steps: budget / rounds,
    checkpoint_every_rounds: rounds,
  };
  cfg.eval = { ...cfg.eval, every_rounds: rounds, max_batches: 2 };
  for (const s of [...sets, ...overrides]) {
    const [path, value] = s.split('=');
    const keys = path.split('.');
    let o = cfg;
    for (const k of keys.slice(0, -1)) o = o[k] ??= {};
    o[keys[keys.length - 1]] = parse(value);
  }
  return cfg;
}

const rows = [];
for (const setup of setups) {
  const walls = { few: [], many: [] };
  let records = [];
  // Interleaved (few, many, few, many): a noisy neighbour hurts both sides alike.
  for (let r = 0; r < repeats; r++) {
    for (const [key, rounds] of [
      ['few', few],
      ['many', many],
    ]) {
      const { summary, metrics } = await runExperiment(
        stringify(configFor(setup, rounds)),
        mkdtempSync(join(tmpdir(), 'flglm-rounds-')),
      );
      const trainRounds = metrics.filter((m) => m.type === 'round');
      // Training time only: the rounds' own wall time (start-up, the final evaluation and exports excluded).
      walls[key].push(trainRounds.reduce((a, m) => a + m.wall_s, 0));
      if (key === 'many') records = trainRounds;
      console.error(
        `${setup} ${rounds} rounds x ${budget / rounds} steps: ${walls[key].at(-1).toFixed(1)} s of rounds (run ${summary.wall_s.toFixed(1)} s)`,
      );
    }
  }
  const perRound = (mean(walls.many) - mean(walls.few)) / (many - few);
  const mib = (b) => b / 2 ** 20;
  rows.push({
    setup,
    budget_steps_per_client: budget,
    few_rounds: few,
    many_rounds: many,
    rounds_s_few: walls.few,
    rounds_s_many: walls.many,
    extra_round_s: perRound,
    mib_per_round: mean(records.map((m) => mib((m.bytes_up ?? 0) + (m.bytes_down ?? 0)))),
    round_end_s: Object.fromEntries(
      Object.entries(records[0]?.round_end ?? {}).map(([k, v]) => [
        k,
        typeof v === 'number'
          ? mean(records.map((m) => m.round_end[k]))
          : Object.fromEntries(Object.keys(v).map((p) => [p, mean(records.map((m) => m.round_end[k][p] ?? 0))])),
      ]),
    ),
  });
  console.error(`${setup}: an extra round costs ${perRound.toFixed(2)} s`);
}
console.log(JSON.stringify(rows, null, 2));
const quoted = process.argv.slice(2).map((a) => (/[|;&\s]/.test(a) ? `'${a}'` : a));
writeResult('round-cost', {
  command: `npm run bench -- round-cost ${quoted.join(' ')}`.trim(),
  base: baseFile.replace(`${root}/`, ''),
  rows,
});
