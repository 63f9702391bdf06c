#!/usr/bin/env node
// `npm run bench -- privacy [--depths 1,2,4] [--sigmas 0,0.01,0.02,0.05,0.1,0.2] [--config configs/quickstart.yaml]
//   [--sparse] [--capture-steps 4] [--hide-compare] [--extra-sigmas 0.5,1] [--no-grid] [--append]`
//
// What activation noise and split depth buy against the honest-but-curious server's inversion attack,
// and what they cost: for each head depth p and noise sigma (relative to the RMS of the h_A the server
// receives at that depth without noise), one federated run of the config (`flglm run --attack`: the
// server captures the last steps' h_A, then inverts them with the head it holds and an inverter trained
// on public text) gives the task accuracy and the reconstruction's token accuracy and ROUGE-L F1.
// `--sparse`: every sigma at the first depth, and only 0 and the two largest at the others.
// `--extra-sigmas`: more sigmas at the first depth only. `--hide-compare`: the same config with
// FedAvg in hierarchical mode (secure aggregation cannot run relay) at twice the rounds, with secure
// aggregation alone and with privacy.hide_aggregate: what hiding the global head buys against the attack.
// Writes bench-results/privacy.json, docs/privacy-inversion.svg and the results section of docs/privacy.md.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify, parse } from 'yaml';
import { dist, machine, root, runExperiment, writeResult } from './common.mjs';

const { pointsChart } = await import(dist('report/html.js'));

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const depths = arg('--depths', '1,2,4').split(',').map(Number);
const sigmas = arg('--sigmas', '0,0.01,0.02,0.05,0.1,0.2').split(',').map(Number);
const configPath = arg('--config', join(root, 'configs', 'quickstart.yaml'));
const captureSteps = Number(arg('--capture-steps', '4'));
const sparse = process.argv.includes('--sparse');
const extraSigmas = arg('--extra-sigmas', '').split(',').filter(Boolean).map(Number);
const hideCompare = process.argv.includes('--hide-compare');
const skipGrid = process.argv.includes('--no-grid');
// --relative: sigma is the config's own, a multiple of each h_A tensor's RMS (activation_noise.relative).
const relative = process.argv.includes('--relative');

const base = parse(readFileSync(configPath, 'utf8'));
// The quickstart's federation, without what the measurement does not need: the centralized
// baseline, TLS (on loopback; what the server receives is the same), evaluations before the end.
base.baseline = 'none';
base.security = { tls: false, payload_encryption: false };
base.eval = { ...(base.eval ?? {}), every_rounds: base.federation?.rounds ?? 1 };

// --append: add to the rows of the last run (bench-results/privacy.json) instead of starting over.
const previous = join(root, 'bench-results', 'privacy.json');
const rows =
  process.argv.includes('--append') && existsSync(previous)
    ? JSON.parse(readFileSync(previous, 'utf8')).rows.map((r) => ({ setup: 'sequential/relay', ...r }))
    : [];
const commands =
  process.argv.includes('--append') && existsSync(previous) ? [JSON.parse(readFileSync(previous, 'utf8')).command] : [];
const gridSetup = `${base.federation.mode}/${base.federation.strategy?.name}${relative ? ', relative noise' : ''}`;
const had = (p, rel) => rows.find((r) => r.setup === gridSetup && r.head_blocks === p && r.sigma_rel === rel);
for (const [k, p] of (skipGrid ? [] : depths).entries()) {
  // With --append, the points already measured are kept (and the sigma = 0 run gives the scale).
  let rms = had(p, 0)?.activation_rms ?? null;
  const wanted = (sparse && k > 0 ? [0, ...sigmas.slice(-2)] : [...sigmas, ...(k === 0 ? extraSigmas : [])]).filter(
    (rel) => !had(p, rel),
  );
  for (const rel of wanted) {
    if (rel > 0 && rms === null && !relative) throw new Error('the sigma list must start with 0 (the reference scale)');
    const sigma = relative ? rel : rel > 0 ? rel * rms : 0;
    const cfg = {
      ...base,
      name: `privacy-p${p}-s${rel}`,
      split: { ...base.split, head_blocks: p },
      privacy: { activation_noise: { sigma, gradients: false, relative } },
    };
    const out = mkdtempSync(join(tmpdir(), 'flglm-privacy-'));
    console.log(`p ${p}, sigma ${rel} x |h_A| (${sigma.toFixed(5)})`);
    const { summary } = await runExperiment(stringify(cfg), out, {}, { attack: { steps: captureSteps } });
    const a = summary.attack;
    if (rel === 0) rms = a.activation_rms;
    rows.push({
      setup: gridSetup,
      head_blocks: p,
      sigma_rel: rel,
      sigma,
      activation_rms: a.activation_rms,
      task_accuracy: summary.eval?.accuracy ?? NaN,
      attack_token_accuracy: a.token_accuracy,
      attack_rouge_l_f1: a.rouge_l_f1,
      positions: a.positions,
      head: a.head,
      sample: a.samples[0],
      wall_s: summary.wall_s,
    });
    console.log(JSON.stringify(rows[rows.length - 1]));
    rmSync(out, { recursive: true, force: true });
  }
}

if (hideCompare) {
  // FedAvg of parallel parts, at twice the quickstart's rounds (what it needs to reach the same accuracy).
  const f = {
    ...base.federation,
    mode: 'hierarchical',
    strategy: { name: 'fedavg' },
    rounds: 8,
    local_steps: 13,
    checkpoint_every_rounds: 8,
  };
  for (const hide of [false, true]) {
    const cfg = {
      ...base,
      name: `privacy-hide-${hide}`,
      federation: f,
      split: { ...base.split, head_blocks: depths[0] },
      security: { tls: true, payload_encryption: true },
      eval: { ...base.eval, every_rounds: 8 },
      privacy: { secure_aggregation: { enabled: true }, hide_aggregate: hide },
    };
    const out = mkdtempSync(join(tmpdir(), 'flglm-privacy-'));
    console.log(`hierarchical FedAvg, secure aggregation${hide ? ' + hide_aggregate' : ''}`);
    const { summary } = await runExperiment(stringify(cfg), out, {}, { attack: { steps: captureSteps } });
    const a = summary.attack;
    rows.push({
      setup: `hierarchical/fedavg 8x13, secure aggregation${hide ? ' + hide_aggregate' : ''}`,
      head_blocks: depths[0],
      sigma_rel: 0,
      sigma: 0,
      activation_rms: a.activation_rms,
      task_accuracy: summary.eval?.accuracy ?? NaN,
      attack_token_accuracy: a.token_accuracy,
      attack_rouge_l_f1: a.rouge_l_f1,
      positions: a.positions,
      head: a.head,
      sample: a.samples[0],
      wall_s: summary.wall_s,
    });
    console.log(JSON.stringify(rows[rows.length - 1]));
    rmSync(out, { recursive: true, force: true });
  }
}

const command = `npm run bench -- privacy --depths ${depths.join(',')} --sigmas ${sigmas.join(',')}${sparse ? ' --sparse' : ''}${extraSigmas.length ? ` --extra-sigmas ${extraSigmas.join(',')}` : ''}${hideCompare ? ' --hide-compare' : ''}${skipGrid ? ' --no-grid' : ''}${relative ? ' --relative' : ''}${configPath.endsWith('quickstart.yaml') ? '' : ` --config ${configPath}`}`;
commands.push(command);
writeResult('privacy', {
  command: commands.join(' && '),
  config: configPath.replace(`${root}/`, ''),
  capture_steps: captureSteps,
  rows,
});

// docs: a plot and the table, between the markers of docs/privacy.md.
const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
const grid = rows.filter((r) => r.setup === rows[0]?.setup);
const series = depths.flatMap((p, i) => [
  {
    label: `p=${p} attack ROUGE-L`,
    points: grid.filter((r) => r.head_blocks === p).map((r) => [r.sigma_rel, r.attack_rouge_l_f1]),
    color: colors[(2 * i) % colors.length],
  },
  {
    label: `p=${p} task accuracy`,
    points: grid.filter((r) => r.head_blocks === p).map((r) => [r.sigma_rel, r.task_accuracy]),
    color: colors[(2 * i + 1) % colors.length],
  },
]);
writeFileSync(
  join(root, 'docs', 'privacy-inversion.svg'),
  pointsChart(series, { xLabel: 'noise sigma / |h_A|', yLabel: 'score', yRange: [0, 1] }),
);
const table = [
  `\`${commands.join(' && ')}\` — ${machineLine()}`,
  '',
  "| setup | head blocks p | sigma / \\|h_A\\| | sigma | task accuracy | cost (points) | attack token accuracy | attack ROUGE-L F1 | the attacker's head |",
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => {
    const ref =
      rows.find((x) => x.setup === r.setup && x.head_blocks === r.head_blocks && x.sigma_rel === 0) ??
      rows.find((x) => x.head_blocks === r.head_blocks && x.sigma_rel === 0) ??
      r;
    return `| ${r.setup} | ${r.head_blocks} | ${r.sigma_rel} | ${r.sigma.toFixed(4)} | ${r.task_accuracy.toFixed(3)} | ${(100 * (ref.task_accuracy - r.task_accuracy)).toFixed(1)} | ${r.attack_token_accuracy.toFixed(3)} | ${r.attack_rouge_l_f1.toFixed(3)} | ${r.head.startsWith('the global') ? 'trained (server checkpoint)' : 'initial weights only'} |`;
  }),
  '',
  '![reconstruction and task accuracy against noise](privacy-inversion.svg)',
  '',
];
const doc = join(root, 'docs', 'privacy.md');
if (existsSync(doc)) {
  const text = readFileSync(doc, 'utf8');
  const [start, end] = ['<!-- privacy-results:start -->', '<!-- privacy-results:end -->'];
  if (text.includes(start) && text.includes(end)) {
    writeFileSync(
      doc,
      `${text.slice(0, text.indexOf(start) + start.length)}\n${table.join('\n')}\n${text.slice(text.indexOf(end))}`,
    );
    console.log('wrote docs/privacy.md (results section)');
  }
}

function machineLine() {
  const m = machine();
  return `${m.cores} × ${m.cpu}, Node ${m.node}, ${m.date.slice(0, 10)}`;
}
