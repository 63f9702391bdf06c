import type { Command } from 'commander';
import { NotYetAvailable } from '../util/errors.js';

export function registerGraphCommand(program: Command): void {
  program
    .command('graph')
    .description('Write a partition\'s forward or backward graph to an .onnx file (for Netron)')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm graph', 'issue #4 (model)');
    });
}
