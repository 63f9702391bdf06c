#!/usr/bin/env node
// `npm run bench -- quant-accuracy [--tasks classify,lm] [--dtypes float16,int8,int4] [--seeds 1]
//   [--steps 30] [--compute int8]`
//
// What a quantized frozen base costs in accuracy: the same centralized LoRA fine-tune (`flglm
// train`, configs/quickstart-lora.yaml: the shipped base models/flglm-small-base, LoRA r 8 on every
// linear layer) with the base held as each of --dtypes, then the held-out loss (and accuracy for
// classify) on the same evaluation batches. One process per run; seeds change the LoRA init and the
// batch order. Results: bench-results/quant-accuracy.json (appends tasks to one written before).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, writeResult } from './common.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const tasks = arg('--tasks', 'classify,lm').split(',');
const dtypes = arg('--dtypes', 'float16,int8,int4').split(',');
const seeds = Number(arg('--seeds', '1'));
const steps = arg('--steps', '30');
const compute = arg('--compute', 'int8');
const TASK_SETS = {
  classify: ['data.task=classify', 'data.dataset=spam-assassin'],
  lm: ['data.task=lm', 'data.dataset=sotu', 'data.partition=iid'],
};

const rows = [];
let previous = [];
try {
  previous = JSON.parse(readFileSync(join(root, 'bench-results', 'quant-accuracy.json'), 'utf8')).rows;
} catch {
  /* first run */
}
const save = () =>
  writeResult('quant-accuracy', {
    setup: { config: 'configs/quickstart-lora.yaml (centralized, flglm train)', steps: Number(steps), eval_batches: 8 },
    note: 'measured on a host shared with other sessions; the loss is of the same held-out batches for every dtype',
    rows: [
      ...previous.filter(
        (r) =>
          !rows.some((x) => x.task === r.task && x.seed === r.seed && x.dtype === r.dtype && x.compute === r.compute),
      ),
      ...rows,
    ],
  });
for (const task of tasks)
  for (let seed = 1; seed <= seeds; seed++)
    for (const dtype of dtypes) {
      const dir = mkdtempSync(join(tmpdir(), 'flglm-quant-acc-'));
      const sets = [
        ...TASK_SETS[task],
        `seed=${seed}`,
        `model.frozen_dtype=${dtype}`,
        `model.quant_compute=${compute}`,
      ];
      sets.push('eval.max_batches=8', 'runtime.threads=2');
      const load = loadavg()[0];
      const r = spawnSync(
        process.execPath,
        [join(root, 'bin', 'flglm'), 'train', join(root, 'configs', 'quickstart-lora.yaml'), '--steps', steps]
          .concat(['--no-save', '--quiet', '--summary-json', join(dir, 's.json')])
          .concat(sets.flatMap((s) => ['--set', s])),
        { encoding: 'utf8' },
      );
      if (r.status !== 0) throw new Error(`${task} ${dtype}: ${r.stderr.slice(-2000)}`);
      const s = JSON.parse(readFileSync(join(dir, 's.json'), 'utf8'));
      rmSync(dir, { recursive: true, force: true });
      const row = {
        task,
        seed,
        dtype,
        compute: dtype.startsWith('int') ? compute : 'float32',
        eval_loss: +s.eval.loss.toFixed(4),
        eval_accuracy: s.eval.accuracy,
        train_loss_final: +s.train_loss_final.toFixed(4),
        peak_rss_mib: s.peak_rss_mib,
        wall_s: +s.wall_s.toFixed(1),
        load_average_at_start: +load.toFixed(1),
      };
      rows.push(row);
      console.log(JSON.stringify(row));
      save(); // after every run: a run cut short keeps what it measured
    }
