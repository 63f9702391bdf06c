// Federated vs centralized quality at an equal token budget (FL-GLM's headline claim).
// For every partition x setup (mode/strategy) x seed: one federated run of the quickstart task
// through the real launcher (server and clients as processes, mTLS + payload encryption), and per
// partition x seed one centralized run on the same silos with the same budget. Both evaluate on
// the same held-out split at the same token cadence, so the curves compare point by point.
//
// With a base config of task generate (configs/generate.yaml) the score is the final model's
// ROUGE-L F1 of greedy generations (exact match beside it), written to parity-generate.json.
//
// Usage: npm run bench -- parity [seeds=3] [setups=sequential/relay,hierarchical/fedavg@4x13,...]
//   a setup is MODE/STRATEGY[:KEY=VALUE...], optionally @ROUNDSxLOCAL_STEPS (same token budget, other round length)
//                               [partitions=natural,dirichlet:0.1,iid] [base=configs/quickstart.yaml] [eval_every_rounds]
//   eval_every_rounds overrides the base's evaluation cadence (finer: a sharper tokens-to-target).
// The full grid (every mode x strategy) takes hours on 2 cores; pass the setups you want.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { mean, root, runExperiment, writeResult } from './common.mjs';

const seeds = Number(process.argv[2] ?? 3);
const ALL = [
  'sequential/relay',
  ...['sequential', 'batch', 'hierarchical'].flatMap((m) =>
    ['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'fedprox', 'scaffold'].map((s) => `${m}/${s}`),
  ),
];
const setups = (process.argv[3] ?? ALL.join(',')).split(',');
const partitions = (process.argv[4] ?? 'natural,dirichlet:0.1,iid').split(',');
const baseFile = resolve(process.argv[5] ?? join(root, 'configs', 'quickstart.yaml'));
const base = parse(readFileSync(baseFile, 'utf8'));
if (process.argv[6]) base.eval = { ...base.eval, every_rounds: Number(process.argv[6]) };
// Paths in a config are relative to its file; the runs' configs are written elsewhere.
if (base.model?.hf_path && !isAbsolute(base.model.hf_path))
  base.model.hf_path = resolve(dirname(baseFile), base.model.hf_path);
const generation = base.data?.task === 'generate';
const resultName = generation ? 'parity-generate' : 'parity';
// Classify: time to 0.95 held-out accuracy. Generate: no such threshold (the curve is teacher-forced exact match).
const TARGET = generation ? null : 0.95;
/** The score a run is judged by, and exact match for generation. */
const score = (summary) => (generation ? summary.generation?.rouge_l_f1 : summary.eval?.accuracy) ?? NaN;
const exact = (summary) => (generation ? (summary.generation?.exact_match ?? NaN) : undefined);

/** Tokens at which a curve first reaches `target` accuracy (null: never within the budget). */
const tokensTo = (curve, target) =>
  target === null ? null : (curve.find((p) => p.accuracy >= target)?.tokens ?? null);
const spread = (xs) =>
  xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)) : 0;

function configFor(partition, seed, setup) {
  const cfg = structuredClone(base);
  cfg.seed = seed;
  cfg.baseline = 'none';
  cfg.data = { ...cfg.data, partition };
  if (setup) {
    const [modeStrategy, shape] = setup.split('@');
    const [mode, strategyWithOptions] = modeStrategy.split('/');
    // STRATEGY:key=value:key=value sets strategy options (e.g. fedavg:client_optimizer=average, fedprox:mu=0.1).
    const [strategy, ...options] = strategyWithOptions.split(':');
    const extra = Object.fromEntries(
      options.map((o) => {
        const [k, v] = o.split('=');
        return [k, parse(v)];
      }),
    );
    cfg.federation = {
      ...cfg.federation,
      mode,
      strategy: { ...(cfg.federation.strategy ?? {}), name: strategy, ...extra },
    };
    if (shape) {
      const [rounds, localSteps] = shape.split('x').map(Number);
      if (rounds * localSteps !== base.federation.rounds * base.federation.local_steps)
        throw new Error(
          `${setup}: ${rounds} x ${localSteps} is not the base budget of ${base.federation.rounds} x ${base.federation.local_steps} steps per client`,
        );
      const evals = Math.max(1, Math.round(rounds / (base.federation.rounds / (base.eval?.every_rounds ?? 1))));
      cfg.federation = { ...cfg.federation, rounds, local_steps: localSteps, checkpoint_every_rounds: rounds };
      cfg.eval = { ...cfg.eval, every_rounds: Math.max(1, Math.floor(rounds / evals)) };
    }
  }
  return cfg;
}

const previous = existsSync(join(root, 'bench-results', `${resultName}.json`))
  ? JSON.parse(readFileSync(join(root, 'bench-results', `${resultName}.json`), 'utf8'))
  : null;
const command = `npm run bench -- parity ${process.argv.slice(2).join(' ')}`.trim();
const result = {
  command,
  // Cells of earlier invocations are kept (one partition or setup at a time fits a session).
  commands: [...new Set([...(previous?.commands ?? (previous?.command ? [previous.command] : [])), command])],
  base: baseFile.replace(`${root}/`, ''),
  budget: {
    rounds: base.federation.rounds,
    local_steps: base.federation.local_steps,
    clients: base.federation.clients,
    batch: base.data.batch_size,
    seq: base.data.seq_len,
  },
  metric: generation ? 'ROUGE-L F1' : 'accuracy',
  target_accuracy: TARGET,
  cells: previous?.cells ?? {},
};
for (const partition of partitions) {
  const central = [];
  for (let s = 0; s < seeds; s++) {
    const seed = 42 + s;
    const dir = mkdtempSync(join(tmpdir(), 'flglm-parity-'));
    const file = join(dir, 'central.yaml');
    writeFileSync(file, stringify(configFor(partition, seed)));
    const summaryPath = join(dir, 'summary.json');
    const r = spawnSync(
      process.execPath,
      [join(root, 'bin', 'flglm'), 'train', file, '--quiet', '--summary-json', summaryPath],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`centralized ${partition} seed ${seed} failed: ${r.stderr}`);
    const summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
    central.push({
      seed,
      accuracy: score(summary),
      exact_match: exact(summary),
      curve: summary.curve,
      wall_s: summary.wall_s,
    });
    console.error(`${partition} centralized seed ${seed}: ${score(summary).toFixed(3)}`);
  }
  result.cells[`${partition}|centralized`] = summarize(central);
  for (const setup of setups) {
    const runs = [];
    for (let s = 0; s < seeds; s++) {
      const seed = 42 + s;
      const yaml = stringify(configFor(partition, seed, setup));
      const { summary, metrics } = await runExperiment(yaml, mkdtempSync(join(tmpdir(), 'flglm-parity-')));
      const curve = metrics
        .filter((m) => m.type === 'eval')
        .map((m) => ({ tokens: m.tokens_seen, accuracy: m.accuracy, loss: m.loss }));
      const roundSeconds = metrics.filter((m) => m.type === 'round').map((m) => m.wall_s);
      runs.push({
        seed,
        accuracy: score(summary),
        exact_match: exact(summary),
        curve,
        wall_s: summary.wall_s,
        round_s: roundSeconds,
      });
      console.error(
        `${partition} ${setup} seed ${seed}: ${score(summary).toFixed(3)} (${summary.wall_s.toFixed(0)} s)`,
      );
    }
    const cell = summarize(runs);
    const c = result.cells[`${partition}|centralized`];
    cell.gap_points = 100 * (c.accuracy_mean - cell.accuracy_mean);
    cell.tokens_to_target_ratio =
      cell.tokens_to_target_mean && c.tokens_to_target_mean
        ? cell.tokens_to_target_mean / c.tokens_to_target_mean
        : null;
    result.cells[`${partition}|${setup}`] = cell;
  }
}
console.log(JSON.stringify(result.cells, (k, v) => (k === 'runs' ? undefined : v), 2));
writeResult(resultName, result);

function summarize(runs) {
  const acc = runs.map((r) => r.accuracy);
  const reached = runs.map((r) => tokensTo(r.curve, TARGET));
  const em = runs.map((r) => r.exact_match).filter((x) => typeof x === 'number');
  return {
    eval_every_rounds: base.eval?.every_rounds,
    accuracy_mean: mean(acc),
    accuracy_sd: spread(acc),
    ...(em.length ? { exact_match_mean: mean(em) } : {}),
    tokens_to_target_mean: reached.every((t) => t !== null) ? mean(reached) : null,
    reached_target: reached.filter((t) => t !== null).length,
    wall_s_mean: mean(runs.map((r) => r.wall_s)),
    runs,
  };
}
