#!/usr/bin/env node
// `npm run bench -- privacy-dp [--settings none,updates:1.3,activations:0.05] [--clip 5] [--act-clip-rms 1]
//   [--rounds 4] [--local-steps 6] [--append]`
//
// Accuracy against epsilon, with the inversion attack's ROUGE-L beside it: for each setting, one
// federated run (`flglm run --attack`, FedAvg in hierarchical mode on the quickstart's silos, shorter)
// gives the task accuracy, the epsilon the run's accountant reports (delta 1e-5) and what the
// server's inversion attack reads back from the h_A it received. Settings: `none`; `updates:SIGMA`
// (DP-FedAvg, clip --clip, server noise); `activations:SIGMA` (each example's h_A clipped to
// --act-clip-rms x the RMS-scale norm sqrt(S D), noise SIGMA x that). Writes bench-results/privacy-dp.json.
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify, parse } from 'yaml';
import { root, runExperiment, writeResult } from './common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const settings = arg('--settings', 'none,updates:1.3,activations:0.05').split(',');
const clip = Number(arg('--clip', '5'));
const actClipRms = Number(arg('--act-clip-rms', '1'));
const rounds = Number(arg('--rounds', '4'));
const localSteps = Number(arg('--local-steps', '6'));

const base = parse(readFileSync(join(root, 'configs', 'quickstart.yaml'), 'utf8'));
base.baseline = 'none';
base.security = { tls: false, payload_encryption: false };
base.data = { ...base.data, seq_len: 64 };
base.model = { ...base.model, max_seq_len: 64 };
base.federation = {
  ...base.federation,
  mode: 'hierarchical',
  strategy: { name: 'fedavg' },
  rounds,
  local_steps: localSteps,
  checkpoint_every_rounds: rounds,
};
base.eval = { ...base.eval, every_rounds: rounds, max_batches: 10 };
const { data, model } = base;
// The preset's width, for the per-example clip norm of h_A (an example holds S x D values).
const { PRESETS } = await import(join(root, 'dist', 'src', 'model', 'config.js'));
const hidden = PRESETS[model.preset].hidden_size;
const actClip = actClipRms * Math.sqrt(data.seq_len * hidden);

const previous = join(root, 'bench-results', 'privacy-dp.json');
const old =
  process.argv.includes('--append') && existsSync(previous) ? JSON.parse(readFileSync(previous, 'utf8')) : null;
const rows = old?.rows ?? [];
const commands = old ? [old.command] : [];
for (const s of settings) {
  const [kind, sigmaText] = s.split(':');
  const sigma = Number(sigmaText ?? 0);
  const dp =
    kind === 'updates'
      ? { updates: { enabled: true, clip_norm: clip, noise_multiplier: sigma, noise: 'server' } }
      : kind === 'activations'
        ? { activations: { enabled: true, clip_norm: actClip, noise_multiplier: sigma } }
        : {};
  const cfg = { ...base, name: `privacy-dp-${kind}-${sigma}`, privacy: { dp, delta: 1e-5 } };
  const out = mkdtempSync(join(tmpdir(), 'flglm-privacy-dp-'));
  console.log(`${s}`);
  const t0 = Date.now();
  const { summary, metrics } = await runExperiment(stringify(cfg), out, {}, { attack: { steps: 2 } });
  const last = metrics.filter((m) => m.type === 'round').at(-1);
  const a = summary.attack;
  rows.push({
    setting: s,
    clip_norm: kind === 'updates' ? clip : kind === 'activations' ? actClip : null,
    noise_multiplier: sigma,
    epsilon: last?.privacy?.epsilon ?? null,
    user_epsilon: last?.privacy?.user_epsilon ?? null,
    example_epsilon: last?.privacy?.example_epsilon ?? null,
    task_accuracy: summary.eval?.accuracy ?? null,
    attack_token_accuracy: a?.token_accuracy ?? null,
    attack_rouge_l_f1: a?.rouge_l_f1 ?? null,
    wall_s: (Date.now() - t0) / 1000,
  });
  console.log(JSON.stringify(rows.at(-1)));
  rmSync(out, { recursive: true, force: true });
}
commands.push(
  `npm run bench -- privacy-dp --settings ${settings.join(',')} --clip ${clip} --act-clip-rms ${actClipRms} --rounds ${rounds} --local-steps ${localSteps}`,
);
writeResult('privacy-dp', {
  command: commands.join(' && '),
  setup: `quickstart silos, ${model.preset} preset, seq_len ${data.seq_len}, hierarchical FedAvg, ${rounds} rounds x ${localSteps} local steps x 3 clients, delta 1e-5`,
  rows,
});
