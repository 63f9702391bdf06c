import type { Command } from 'commander';
import { appendFileSync } from 'node:fs';
import { loadConfigFile } from '../config/load.js';
import { trainCentralized } from '../training/centralized.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { checkExamplesForTask, readSilo } from '../data/examples.js';
import { evaluateGeneration } from '../training/generation-eval.js';
import { isPromptExample } from '../data/examples.js';
import { evalBatches } from '../data/batches.js';
import { PartExecutor } from '../training/part-executor.js';
import { evaluateBatches } from '../training/evaluate.js';
import { collect, intOption, SET_HELP } from './options.js';
import { loadModelFolder } from '../training/model-folder.js';
import { preflight } from '../config/preflight.js';
import { prepareOutputDir } from '../util/output-dir.js';
import { createRunFolder } from '../launcher/run-folder.js';
import { peakRssMib } from '../launcher/summaries.js';

const positiveInt = (flag: string) => intOption(flag, 1);

export function registerTrainingCommands(program: Command): void {
  program
    .command('train <config>')
    .description('Centralized baseline: train the unsplit model on the union of all silos')
    .option(
      '--steps <n>',
      'optimizer steps (default: the federated budget rounds x local_steps x clients)',
      positiveInt('--steps'),
    )
    .option(
      '--out <dir>',
      'save the trained model checkpoint here (default: a new folder <output_dir>/<name>-centralized-<time>)',
    )
    .option('--no-save', "do not save the trained model (a launcher's baseline)")
    .option('--summary-json <path>', 'write the run summary as JSON')
    .option('--losses-json <path>', 'write the per-step training losses as JSON')
    .option('--quiet', 'no progress output')
    .option('--metrics <file>', 'append a JSON line per step (step, loss, tokens so far, time)')
    .option('--set <key=value>', SET_HELP, collect, [])
    .action(
      async (
        configPath: string,
        o: {
          set: string[];
          steps?: number;
          out?: string;
          save: boolean;
          summaryJson?: string;
          lossesJson?: string;
          quiet?: boolean;
          metrics?: string;
        },
      ) => {
        const cfg = loadConfigFile(configPath, o.set);
        preflight(cfg, { federated: false });
        // The output folder is made (and checked writable) before training, not after it.
        const out = !o.save
          ? undefined
          : o.out
            ? prepareOutputDir(o.out, '--out')
            : createRunFolder(undefined, cfg.output_dir, `${cfg.name}-centralized`);
        const summary = await trainCentralized(cfg, {
          steps: o.steps,
          quiet: o.quiet,
          checkpointDir: out,
          onStep: o.metrics ? (r) => appendFileSync(o.metrics!, `${JSON.stringify(r)}\n`) : undefined,
        });
        const { losses: _losses, ...report } = summary;
        console.log(
          `centralized: ${summary.steps} steps, ${summary.tokens} tokens in ${summary.wall_s.toFixed(1)} s (${summary.tokens_per_s.toFixed(0)} tokens/s); train loss ${summary.train_loss_final.toFixed(4)}; eval loss ${summary.eval.loss.toFixed(4)}, perplexity ${summary.eval.perplexity.toFixed(3)}, accuracy ${summary.eval.accuracy.toFixed(4)}${summary.generation ? `; generation ROUGE-L F1 ${summary.generation.rouge_l_f1.toFixed(4)}, exact match ${summary.generation.exact_match.toFixed(4)}` : ''}`,
        );
        if (o.summaryJson)
          writeFileAtomic(o.summaryJson, JSON.stringify({ ...report, peak_rss_mib: peakRssMib() }, null, 2));
        if (o.lossesJson) writeFileAtomic(o.lossesJson, JSON.stringify(summary.losses));
        if (out) console.log(`model: ${out} (flglm eval / generate / export --model ${out})`);
      },
    );
  program
    .command('eval')
    .description('Evaluate a saved model on a data folder: loss, perplexity, accuracy')
    .requiredOption('--model <dir>', 'checkpoint folder written by flglm train / flglm run')
    .requiredOption('--data <dir>', 'folder of .jsonl/.txt examples')
    .option('--batch-size <n>', 'examples per batch', positiveInt('--batch-size'), 8)
    .option('--seq-len <n>', 'tokens per example', positiveInt('--seq-len'), 128)
    .option(
      '--generate',
      'also decode each prompt greedily and score the text: ROUGE-L F1 and exact match (prompt/completion data)',
    )
    .option('--max-new-tokens <n>', 'with --generate: tokens to decode per prompt', positiveInt('--max-new-tokens'), 48)
    .option('--json', 'print metrics as JSON')
    .action(
      async (o: {
        model: string;
        data: string;
        batchSize: number;
        seqLen: number;
        generate?: boolean;
        maxNewTokens: number;
        json?: boolean;
      }) => {
        const { config, store, peft, tokenizer } = loadModelFolder(o.model);
        const examples = readSilo(o.data);
        if (o.generate) checkExamplesForTask(examples, 'generate');
        const model = new PartExecutor('full', config, { head_blocks: 1, tail_blocks: 1 }, peft, store);
        const metrics = await evaluateBatches(
          evalBatches(examples, tokenizer, o.batchSize, o.seqLen),
          (b) => model.evaluate(b.tokens, b.labels),
          examples.some(isPromptExample),
        );
        await model.release();
        const gen = o.generate
          ? await evaluateGeneration({ config, peft, store }, tokenizer, examples, {
              batchSize: o.batchSize,
              seqLen: o.seqLen,
              maxNewTokens: o.maxNewTokens,
              maxExamples: null,
              samples: 3,
            })
          : null;
        if (o.json) console.log(JSON.stringify(gen ? { ...metrics, generation: gen } : metrics));
        else
          console.log(
            `eval on ${metrics.examples} examples: loss ${metrics.loss.toFixed(4)}, perplexity ${metrics.perplexity.toFixed(3)}, accuracy ${metrics.accuracy.toFixed(4)}${gen ? `; generation ROUGE-L F1 ${gen.rouge_l_f1.toFixed(4)}, exact match ${gen.exact_match.toFixed(4)}` : ''}`,
          );
      },
    );
}
