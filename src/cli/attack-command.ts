import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { DEFAULT_ATTACK, invertActivations, serverViewHead } from '../privacy/attack.js';
import { readCapture } from '../privacy/capture.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { intOption, numberOption } from './options.js';

/** `flglm attack invert`: the honest-but-curious server's inversion attack on captured activations (privacy/attack.ts). */
export function registerAttackCommand(program: Command): void {
  const attack = program
    .command('attack')
    .description('Measure what a curious server could learn (privacy tests of your own configuration)');
  attack
    .command('invert')
    .description(
      'Train an inverter on public text through the head the server holds, then read the captured h_A back as text; token accuracy and ROUGE-L F1',
    )
    .option(
      '--run <dir>',
      'a run folder made with `flglm run --attack` (its config.yaml, checkpoints/server/latest, capture/)',
    )
    .option('--config <file>', 'the plan (instead of --run)')
    .option(
      '--server-checkpoint <dir>',
      "the server's round checkpoint (its global client parts are the head the attacker uses; without one: the initial weights)",
    )
    .option('--capture <dir>', 'what `flglm server --capture` and `flglm client --capture` kept')
    .option(
      '--public-tokens <n>',
      'public-text tokens to train the inverter on',
      intOption('--public-tokens', 1000),
      DEFAULT_ATTACK.publicTokens,
    )
    .option('--steps <n>', 'inverter training steps', intOption('--steps', 1), DEFAULT_ATTACK.inverter.steps)
    .option(
      '--sigma <s>',
      "noise the attacker adds to its training pairs (default: the plan's privacy.activation_noise.sigma)",
      numberOption('--sigma', 0),
    )
    .option('--json <file>', 'write the result as JSON')
    .action(
      async (o: {
        run?: string;
        config?: string;
        serverCheckpoint?: string;
        capture?: string;
        publicTokens: number;
        steps: number;
        sigma?: number;
        json?: string;
      }) => {
        if (!o.run && !(o.config && o.capture))
          throw new UserError('give --run RUN_DIR, or --config FILE with --capture DIR (and --server-checkpoint DIR)');
        const cfg = loadConfigFile(o.config ?? join(o.run!, 'config.yaml'));
        const ckpt = o.serverCheckpoint ?? (o.run ? join(o.run, 'checkpoints', 'server', 'latest') : null);
        if (o.serverCheckpoint && !existsSync(join(o.serverCheckpoint, 'checkpoint.json')))
          throw new UserError(`--server-checkpoint ${o.serverCheckpoint}: no checkpoint.json there`);
        const head = serverViewHead(cfg, ckpt);
        const captured = readCapture(o.capture ?? join(o.run!, 'capture'));
        const r = await invertActivations(cfg, head, captured, {
          ...DEFAULT_ATTACK,
          publicTokens: o.publicTokens,
          sigma: o.sigma ?? cfg.privacy.activation_noise.sigma,
          relative: cfg.privacy.activation_noise.relative,
          inverter: { ...DEFAULT_ATTACK.inverter, steps: o.steps },
        });
        console.log(`head: ${r.head}`);
        console.log(
          `inverter: ${r.public_pairs} public pairs (noise sigma ${r.sigma}), final loss ${r.inverter_final_loss.toFixed(3)}`,
        );
        console.log(
          `reconstruction of ${r.positions} positions in ${r.captured_steps} captured steps (h_A RMS ${r.activation_rms.toFixed(4)}): token accuracy ${r.token_accuracy.toFixed(3)}, ROUGE-L F1 ${r.rouge_l_f1.toFixed(3)}`,
        );
        for (const s of r.samples)
          console.log(
            `  truth:          ${JSON.stringify(s.truth.slice(0, 80))}\n  reconstruction: ${JSON.stringify(s.reconstruction.slice(0, 80))}`,
          );
        if (o.json) writeFileAtomic(o.json, JSON.stringify(r, null, 2));
      },
    );
}
