import type { Command } from 'commander';
import { registerClientCommand } from './client-command.js';
import { registerServerCommand } from './server-command.js';

/** `flglm server` and `flglm client`: the two sides of a federation, each its own process. */
export function registerFederationCommands(program: Command): void {
  registerServerCommand(program);
  registerClientCommand(program);
}
