import type { Command } from 'commander';
import { readFileSync, existsSync } from 'node:fs';
import { configToYaml, formatProblem, parseConfigText } from '../config/load.js';
import { UserError } from '../util/errors.js';

export function registerConfigCommand(program: Command): void {
  const config = program.command('config').description('Validate an experiment YAML and print it fully resolved with defaults');
  config
    .command('validate <file>')
    .description('Check a config: print every problem with its YAML path and line (exit 1), or the resolved config')
    .action((file: string) => {
      if (!existsSync(file)) throw new UserError(`config file not found: ${file}. Fix: check the path`);
      const result = parseConfigText(readFileSync(file, 'utf8'));
      if (!result.ok) {
        for (const p of result.problems) console.error(`${file}: ${formatProblem(p)}`);
        console.error(`${result.problems.length} problem${result.problems.length === 1 ? '' : 's'} found; see configs/reference.yaml for every key and its default`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`# ${file}: valid. Resolved config with defaults:\n${configToYaml(result.config)}`);
    });
}
