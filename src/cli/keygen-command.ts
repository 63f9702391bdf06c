import type { Command } from 'commander';
import { NotYetAvailable } from '../util/errors.js';

export function registerKeygenCommand(program: Command): void {
  program
    .command('keygen')
    .description('Create a PKI: CA, server TLS cert, per-client TLS certs and payload keys, as startup kits')
    .allowUnknownOption()
    .action(() => {
      throw new NotYetAvailable('flglm keygen', 'issue #5 (security)');
    });
}
