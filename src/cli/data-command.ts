import type { Command } from 'commander';
import { NotYetAvailable } from '../util/errors.js';

export function registerDataCommand(program: Command): void {
  program
    .command('data')
    .description('Prepare client data silos and a test split from the bundled corpora')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm data', 'issue #4 (data)');
    });
}
