import type { Command } from 'commander';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configToYaml, formatProblem, parseConfigText, resolveConfigPaths } from '../config/load.js';
import { preflight } from '../config/preflight.js';
import { experimentSchema } from '../config/schema.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { collect, SET_HELP } from './options.js';

const CONFIGS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'configs');

/** The experiment YAML as a JSON Schema (zod 4), for editor completion and validation. */
export function configJsonSchema(): string {
  const schema = z.toJSONSchema(experimentSchema, { io: 'input', unrepresentable: 'any' });
  return `${JSON.stringify({ ...schema, title: 'flglm experiment config', description: 'See configs/reference.yaml for every key with its default.' }, null, 2)}\n`;
}

export function registerConfigCommand(program: Command): void {
  const config = program.command('config').description('Validate an experiment YAML, or write its JSON Schema');
  config
    .command('validate <file>')
    .description('Check a config: print every problem with its YAML path and line (exit 1), or the resolved config')
    .option('--set <key=value>', SET_HELP, collect, [])
    .action((file: string, o: { set: string[] }) => {
      if (!existsSync(file)) throw new UserError(`config file not found: ${file}. Fix: check the path`);
      const result = parseConfigText(readFileSync(file, 'utf8'), o.set);
      if (!result.ok) {
        for (const p of result.problems) console.error(`${file}: ${formatProblem(p)}`);
        console.error(
          `${result.problems.length} problem${result.problems.length === 1 ? '' : 's'} found; see configs/reference.yaml for every key and its default`,
        );
        process.exitCode = 1;
        return;
      }
      // Beyond the schema: the model, the memory a step needs, the data folders (paths from the file's folder).
      const cfg = resolveConfigPaths(result.config, dirname(resolve(file)), result.written);
      const notes = preflight(cfg);
      process.stdout.write(
        `# ${file}: valid.\n${notes.map((n) => `# ${n}\n`).join('')}# Resolved config with defaults:\n${configToYaml(result.config)}`,
      );
    });
  config
    .command('schema')
    .description('Write the JSON Schema of the experiment YAML (editors complete and check keys with it)')
    .option('--out <file>', 'write it here instead of standard output')
    .action((o: { out?: string }) => {
      if (o.out) writeFileAtomic(o.out, configJsonSchema());
      else process.stdout.write(configJsonSchema());
    });
  program
    .command('init [file]')
    .description('Write a commented starter config (the quickstart) to begin an experiment from')
    .action((file = 'flglm.yaml') => {
      if (existsSync(file))
        throw new UserError(`${file} already exists; refusing to overwrite it. Fix: give another file name`);
      const schema = relative(dirname(resolve(file)), join(CONFIGS, 'flglm.schema.json'));
      const body = readFileSync(join(CONFIGS, 'quickstart.yaml'), 'utf8').replace(/^# yaml-language-server:.*\n/, '');
      writeFileAtomic(
        file,
        `# yaml-language-server: $schema=${schema}\n# Every key and its default: ${relative(dirname(resolve(file)), join(CONFIGS, 'reference.yaml'))}. Check it: flglm config validate ${file}\n${body}`,
      );
      console.log(
        `${file}: starter config written (the quickstart: 3 clients on the spam-assassin silos). Next: flglm config validate ${file}, then flglm run ${file}`,
      );
    });
}
