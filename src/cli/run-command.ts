import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { preflight } from '../config/preflight.js';
import { ExperimentLauncher } from '../launcher/launcher.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { collect, intOption, portOption, SET_HELP } from './options.js';
import { folderSource } from '../report/dashboard/run-source.js';
import { announceDashboard } from './dashboard-command.js';

/** `flglm run`: a whole federated experiment on loopback (launcher/launcher.ts). */
export function registerRunCommand(program: Command): void {
  program
    .command('run [config]')
    .description('Launch a whole federated experiment (server + clients on loopback) from one YAML file')
    .option('--out <dir>', 'run folder (default: <output_dir>/<name>-<time>, never shared with another run)')
    .option(
      '--resume <run-dir>',
      'continue an interrupted or failed run from its last round checkpoint (uses its config.yaml)',
    )
    .option('--set <key=value>', SET_HELP, collect, [])
    .option('--summary-json <path>', 'also copy summary.json here')
    .option('--quiet', 'no spinner or progress bar')
    .option('--tensorboard <dir>', 'write TensorBoard event files here (tracking.tensorboard)')
    .option('--ui [port]', 'serve the live dashboard on 127.0.0.1 while the run goes (default port 8470; 0 = any free)')
    .option(
      '--attack',
      'PRIVACY TEST: the server keeps the last --capture-steps h_A of each client, and after training `flglm attack invert` reads them back with the head the server holds; scores in summary.json and attack.json',
    )
    .option(
      '--capture-steps <n>',
      'with --attack: steps per client to capture and invert',
      intOption('--capture-steps', 1),
      4,
    )
    .action(
      async (
        configArg: string | undefined,
        o: {
          set: string[];
          out?: string;
          resume?: string;
          summaryJson?: string;
          quiet?: boolean;
          attack?: boolean;
          captureSteps: number;
          ui?: boolean | string;
          tensorboard?: string;
        },
      ) => {
        if (o.resume && configArg)
          throw new UserError('give either a config or --resume RUN_DIR (a resumed run uses its own config.yaml)');
        if (o.resume && o.out) throw new UserError('--resume continues its own folder; drop --out');
        if (o.resume && o.set.length)
          throw new UserError('--resume continues the run as it was configured; drop --set');
        const configPath = o.resume ? join(o.resume, 'config.yaml') : configArg;
        if (!configPath) throw new UserError('missing config. Usage: flglm run CONFIG.yaml (see flglm run --help)');
        const loaded = loadConfigFile(configPath, o.set);
        const cfg = o.tensorboard
          ? { ...loaded, tracking: { ...loaded.tracking, tensorboard: resolve(o.tensorboard) } }
          : loaded;
        preflight(cfg, { federated: true });
        const launcher = new ExperimentLauncher(cfg, readFileSync(configPath, 'utf8'), {
          quiet: o.quiet,
          outDir: o.out,
          resumeDir: o.resume,
          attack: o.attack ? { steps: o.captureSteps } : undefined,
        });
        const interrupt = () => {
          console.error('\nflglm: interrupted; stopping the server and clients');
          launcher.markEnded(new Error(`interrupted; continue with flglm run --resume ${launcher.runDir}`));
          void launcher.stopAll().then(() => process.exit(130));
        };
        process.once('SIGINT', interrupt);
        process.once('SIGTERM', interrupt);
        const ui = o.ui
          ? await announceDashboard({
              source: folderSource(launcher.runDir, cfg),
              host: '127.0.0.1',
              port: o.ui === true ? 8470 : portOption('--ui')(o.ui),
              what: '--ui',
            })
          : null;
        try {
          const s = await launcher.run();
          launcher.markEnded();
          await ui?.close();
          if (o.summaryJson) writeFileAtomic(o.summaryJson, JSON.stringify(s, null, 2));
          const acc = (e?: { accuracy?: number } | null) =>
            e && typeof e.accuracy === 'number' ? e.accuracy.toFixed(4) : '–';
          console.log(
            `${s.mode}: ${s.clients} clients, ${s.rounds} rounds, ${s.steps} steps, ${s.tokens} tokens in ${s.wall_s.toFixed(1)} s (${s.tokens_per_s.toFixed(0)} tokens/s); eval accuracy ${acc(s.eval)}${s.baseline ? ` vs centralized ${acc(s.baseline.eval)}` : ''}`,
          );
          if (s.generation)
            console.log(
              `generation: ROUGE-L F1 ${s.generation.rouge_l_f1.toFixed(4)}, exact match ${s.generation.exact_match.toFixed(4)}${s.baseline?.generation ? ` vs centralized ${s.baseline.generation.rouge_l_f1.toFixed(4)}, ${s.baseline.generation.exact_match.toFixed(4)}` : ''}`,
            );
          if (s.attack)
            console.log(
              `inversion attack (${s.attack.head}): token accuracy ${s.attack.token_accuracy.toFixed(3)}, ROUGE-L F1 ${s.attack.rouge_l_f1.toFixed(3)} on ${s.attack.positions} positions`,
            );
          console.log(`report: ${join(s.run_dir, 'report.html')}`);
        } catch (e) {
          await ui?.close();
          await launcher.stopAll();
          launcher.markEnded(e as Error);
          throw e;
        }
      },
    );
}
