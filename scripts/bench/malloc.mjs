#!/usr/bin/env node
// `npm run bench -- malloc [--pairs 3] [--steps 25]`
//
// What flglm's malloc settings (src/util/malloc-env.ts: freed memory stays in the heap) are worth
// on this machine: glibc's defaults and the settings, interleaved pair by pair, for
// - a `small` 8 x 128 full fine-tuning step in one `flglm train` process (median step gap after
//   the first two steps, peak RSS);
// - a 1-client split step (`flglm run`: server and client processes over loopback, mutual TLS and
//   payload AES-GCM; median step gap of rounds 2+), the server's and the client's peak RSS.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { centralizedSteps, median, root, stepGaps, writeResult } from './common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const pairs = Number(arg('--pairs', '3'));
const steps = Number(arg('--steps', '25'));
const { MALLOC_ENV } = await import(join(root, 'dist', 'src', 'util', 'malloc-env.js'));
const settings = {
  'glibc defaults': () => {
    const e = { ...process.env, FLGLM_SYSTEM_MALLOC: '1' };
    for (const k of Object.keys(MALLOC_ENV)) delete e[k];
    return e;
  },
  'heap, no trim': () => ({ ...process.env, FLGLM_SYSTEM_MALLOC: '', ...MALLOC_ENV }),
};
const flglm = (args, env) => {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'flglm'), ...args], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`flglm ${args[0]} failed: ${r.stderr}`);
};
const base =
  'seed: 1\nmodel: {preset: small}\ndata: {task: lm, dataset: sotu, partition: iid, batch_size: 8, seq_len: 128, max_examples: 200}\neval: {max_batches: 1}\n';

function centralized(env) {
  const { gaps, peak_rss_mib } = centralizedSteps(`name: malloc\n${base}runtime: {threads: 2}\n`, steps, env);
  return { step_s: median(gaps), peak_rss_mib };
}

function split(env) {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-malloc-run-'));
  try {
    writeFileSync(
      join(dir, 'c.yaml'),
      `name: malloc-split\n${base}federation: {mode: sequential, clients: 1, rounds: 3, local_steps: 8}\nsecurity: {tls: true, payload_encryption: true}\n`,
    );
    flglm(['run', join(dir, 'c.yaml'), '--out', join(dir, 'run'), '--quiet'], env);
    const gaps = stepGaps(
      readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    );
    const summary = JSON.parse(readFileSync(join(dir, 'run', 'summary.json'), 'utf8'));
    return { step_s: median(gaps), peak_rss_mib: summary.peak_rss_mib };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [];
for (let p = 0; p < pairs; p++) {
  for (const [name, env] of Object.entries(settings)) {
    const row = { pair: p + 1, malloc: name, centralized: centralized(env()), split: split(env()) };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
}
const ratio = (k) =>
  rows
    .filter((r) => r.malloc === 'heap, no trim')
    .map((r) => r[k].step_s / rows.find((x) => x.pair === r.pair && x.malloc === 'glibc defaults')[k].step_s);
writeResult('malloc', {
  command: `npm run bench -- malloc --pairs ${pairs} --steps ${steps}`,
  rows,
  step_time_ratio: { centralized: ratio('centralized'), split: ratio('split') },
});
