import type { Command } from 'commander';
import { NotYetAvailable } from '../util/errors.js';

export function registerTrainingCommands(program: Command): void {
  program
    .command('train')
    .description('Centralized baseline: train the unsplit model on the union of all silos')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm train', 'issue #4 (model)');
    });
  program
    .command('eval')
    .description('Evaluate a saved model on a data folder: loss, perplexity, accuracy')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm eval', 'issue #4 (model)');
    });
}
