import type { Command } from 'commander';
import { epsilon, noiseForEpsilon, DEFAULT_ORDERS } from '../privacy/accountant.js';
import { UserError } from '../util/errors.js';
import { intOption, numberOption } from './options.js';

interface MechanismOptions {
  samplingRate: number;
  steps: number;
  delta: number;
  json?: boolean;
}

const probability = (flag: string) => numberOption(flag, 0, 1);

function withMechanism(cmd: Command): Command {
  return cmd
    .requiredOption(
      '--sampling-rate <q>',
      'probability that an example (example-level DP) or a client (user-level DP) is in a step',
      probability('--sampling-rate'),
    )
    .requiredOption(
      '--steps <n>',
      'compositions: optimizer steps (example-level) or rounds (user-level)',
      intOption('--steps', 0),
    )
    .requiredOption('--delta <d>', 'the δ of (ε, δ), e.g. 1e-5 (below 1 / the number of examples or users)', (v) => {
      const d = Number(v);
      if (v.trim() === '' || !(d > 0 && d < 1)) throw new UserError(`--delta: expected a number in (0, 1), got "${v}"`);
      return d;
    })
    .option('--json', 'print the result as JSON');
}

/** `flglm privacy epsilon|noise`: the RDP accountant (privacy/accountant.ts) before any run. */
export function registerPrivacyCommand(program: Command): void {
  const privacy = program.command('privacy').description('Differential privacy: the accountant behind privacy.dp');
  withMechanism(
    privacy
      .command('epsilon')
      .description(
        "ε of the Poisson-subsampled Gaussian mechanism after N steps (RDP accountant, Balle et al. 2020's conversion, as Opacus)",
      )
      .requiredOption(
        '--noise-multiplier <s>',
        'noise standard deviation / clipping norm',
        numberOption('--noise-multiplier', 0),
      ),
  ).action((o: MechanismOptions & { noiseMultiplier: number }) => {
    const r = epsilon({ samplingRate: o.samplingRate, noiseMultiplier: o.noiseMultiplier, steps: o.steps }, o.delta);
    if (o.json) {
      console.log(
        JSON.stringify({ ...r, sampling_rate: o.samplingRate, noise_multiplier: o.noiseMultiplier, steps: o.steps }),
      );
      return;
    }
    console.log(
      `ε = ${r.epsilon.toFixed(4)} at δ = ${o.delta} (RDP order ${r.order}; sampling rate ${o.samplingRate}, noise multiplier ${o.noiseMultiplier}, ${o.steps} steps)`,
    );
  });
  withMechanism(
    privacy
      .command('noise')
      .description('the smallest noise multiplier that keeps ε at or below a target after N steps')
      .requiredOption(
        '--target-epsilon <e>',
        'the ε to stay within',
        numberOption('--target-epsilon', Number.MIN_VALUE),
      ),
  ).action((o: MechanismOptions & { targetEpsilon: number }) => {
    const sigma = noiseForEpsilon(o.targetEpsilon, o.delta, o.samplingRate, o.steps, DEFAULT_ORDERS);
    const r = epsilon({ samplingRate: o.samplingRate, noiseMultiplier: sigma, steps: o.steps }, o.delta);
    if (o.json) {
      console.log(JSON.stringify({ noise_multiplier: sigma, ...r, sampling_rate: o.samplingRate, steps: o.steps }));
      return;
    }
    console.log(`noise multiplier ${sigma.toPrecision(4)} gives ε = ${r.epsilon.toFixed(4)} at δ = ${o.delta}`);
  });
}
