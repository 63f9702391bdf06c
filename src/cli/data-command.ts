import type { Command } from 'commander';
import { prepareExamples, writePreparedData } from '../data/prepare.js';
import { DATASETS, TASKS } from '../config/schema.js';
import { UserError } from '../util/errors.js';
import { intOption } from './options.js';

export function registerDataCommand(program: Command): void {
  const data = program.command('data').description('Prepare client data silos and a test split from the bundled corpora');
  data
    .command('prepare')
    .description('Write one folder per client silo plus a held-out test folder')
    .requiredOption('--out <dir>', 'output folder')
    .option('--dataset <name>', `one of ${DATASETS.join(', ')}`, 'spam-assassin')
    .option('--task <task>', `one of ${TASKS.join(', ')}`, 'classify')
    .option('--clients <n>', 'number of client silos', intOption('--clients', 1), 3)
    .option('--partition <rule>', 'natural | iid | dirichlet:ALPHA', 'natural')
    .option('--test-fraction <f>', 'held-out share of every source', '0.1')
    .option('--max-examples <n>', 'cap examples per silo')
    .option('--seed <n>', 'shuffle seed', '0')
    .option('--force', 'write into a non-empty folder')
    .action((o: Record<string, string | number | boolean | undefined>) => {
      const dataset = String(o.dataset) as (typeof DATASETS)[number];
      const task = String(o.task) as (typeof TASKS)[number];
      if (!DATASETS.includes(dataset)) throw new UserError(`--dataset: expected ${DATASETS.join('|')}, got "${dataset}"`);
      if (!TASKS.includes(task)) throw new UserError(`--task: expected ${TASKS.join('|')}, got "${task}"`);
      const partition = String(o.partition);
      if (!/^(natural|iid|dirichlet:\d*\.?\d+)$/.test(partition)) throw new UserError(`--partition: expected natural|iid|dirichlet:ALPHA, got "${partition}"`);
      const clients = Number(o.clients);
      const prepared = prepareExamples({
        dataset, task, clients, partition, testFraction: Number(o.testFraction), seed: Number(o.seed),
        maxExamples: o.maxExamples ? Number(o.maxExamples) : null,
      });
      const dirs = writePreparedData(String(o.out), prepared, Boolean(o.force));
      dirs.forEach((d, i) => console.log(`${d}: ${prepared.silos[i].length} examples from ${prepared.sources[i].join(', ') || '(none)'}`));
      console.log(`${o.out}/test: ${prepared.test.length} held-out examples`);
    });
}
