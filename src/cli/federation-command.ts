import type { Command } from 'commander';
import { NotYetAvailable } from '../util/errors.js';

export function registerFederationCommands(program: Command): void {
  program
    .command('server')
    .description('Run the split-learning server (trunk) in sequential, batch or hierarchical mode')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm server', 'issue #6 (federation)');
    });
  program
    .command('client')
    .description('Run a client: head and tail on a local data silo, talking to a server')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm client', 'issue #6 (federation)');
    });
  program
    .command('run')
    .description('Launch a whole federated experiment (server + clients on loopback) from one YAML file')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm run', 'issue #6 (federation)');
    });
}
