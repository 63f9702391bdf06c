import type { Command } from 'commander';
import { prepareExamples, writePreparedData } from '../data/prepare.js';
import { DATASETS } from '../config/schema.js';
import { TASKS } from '../data/examples.js';
import { UserError } from '../util/errors.js';
import { fraction, intOption } from './options.js';
import { checkExamplesForTask, isPromptExample, readSilo } from '../data/examples.js';

export function registerDataCommand(program: Command): void {
  const data = program
    .command('data')
    .description('Prepare client data silos and a test split from the bundled corpora');
  data
    .command('prepare')
    .description('Write one folder per client silo plus a held-out test folder')
    .requiredOption('--out <dir>', 'output folder')
    .option('--dataset <name>', `one of ${DATASETS.join(', ')}`, 'spam-assassin')
    .option('--task <task>', `one of ${TASKS.join(', ')}`, 'classify')
    .option('--clients <n>', 'number of client silos', intOption('--clients', 1), 3)
    .option('--partition <rule>', 'natural | iid | dirichlet:ALPHA', 'natural')
    .option('--test-fraction <f>', 'held-out share of every source, between 0 and 1', fraction('--test-fraction'), 0.1)
    .option('--max-examples <n>', 'cap examples per silo', intOption('--max-examples', 1))
    .option('--seed <n>', 'shuffle seed', intOption('--seed', 0), 0)
    .option('--force', 'write into a non-empty folder')
    .action((o: Record<string, string | number | boolean | undefined>) => {
      const dataset = String(o.dataset) as (typeof DATASETS)[number];
      const task = String(o.task) as (typeof TASKS)[number];
      if (!DATASETS.includes(dataset))
        throw new UserError(`--dataset: expected ${DATASETS.join('|')}, got "${dataset}"`);
      if (!TASKS.includes(task)) throw new UserError(`--task: expected ${TASKS.join('|')}, got "${task}"`);
      const partition = String(o.partition);
      if (!/^(natural|iid|dirichlet:\d*\.?\d+)$/.test(partition))
        throw new UserError(`--partition: expected natural|iid|dirichlet:ALPHA, got "${partition}"`);
      const clients = Number(o.clients);
      const prepared = prepareExamples({
        dataset,
        task,
        clients,
        partition,
        testFraction: Number(o.testFraction),
        seed: Number(o.seed),
        maxExamples: o.maxExamples ? Number(o.maxExamples) : null,
      });
      const dirs = writePreparedData(String(o.out), prepared, Boolean(o.force));
      dirs.forEach((d, i) =>
        console.log(`${d}: ${prepared.silos[i].length} examples from ${prepared.sources[i].join(', ') || '(none)'}`),
      );
      console.log(`${o.out}/test: ${prepared.test.length} held-out examples`);
    });
  data
    .command('check <dir>')
    .description('Lint a silo folder: every file parses (file:line), UTF-8, examples fit the task; print what it holds')
    .option('--task <task>', `the task it is for: ${TASKS.join(' | ')}`, 'classify')
    .action((dir: string, o: { task: string }) => {
      if (!TASKS.includes(o.task as (typeof TASKS)[number]))
        throw new UserError(`--task: expected ${TASKS.join('|')}, got "${o.task}"`);
      const examples = readSilo(dir);
      checkExamplesForTask(examples, o.task as (typeof TASKS)[number]);
      const prompts = examples.filter(isPromptExample);
      const empty = examples.filter((e) => (isPromptExample(e) ? !e.completion.trim() : !e.text.trim()));
      if (empty.length)
        throw new UserError(`${empty[0].at ?? dir}: an empty example (${empty.length} in all). Fix: remove it`);
      const chars = examples.reduce(
        (a, e) => a + (isPromptExample(e) ? e.prompt.length + e.completion.length : e.text.length),
        0,
      );
      console.log(
        `${dir}: ${examples.length} examples (${prompts.length} prompt/completion, ${examples.length - prompts.length} text), ${(chars / 1e3).toFixed(0)} k characters, ${Math.round(chars / examples.length)} per example`,
      );
      if (prompts.length) {
        const labels = new Map<string, number>();
        for (const p of prompts) labels.set(p.completion.trim(), (labels.get(p.completion.trim()) ?? 0) + 1);
        const top = [...labels].sort((a, b) => b[1] - a[1]).slice(0, 10);
        console.log(
          `completions: ${top.map(([l, n]) => `${JSON.stringify(l.slice(0, 30))} ${n}`).join(', ')}${labels.size > 10 ? `, ... (${labels.size} distinct)` : ''}`,
        );
      }
    });
}
