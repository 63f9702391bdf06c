import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeError, UserError } from '../util/errors.js';
import { registerConfigCommand } from './config-command.js';
import { registerTrainingCommands } from './train-command.js';
import { registerGenerateCommand } from './generate-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerKeygenCommand } from './keygen-command.js';
import { registerFederationCommands } from './federation-command.js';
import { registerRunCommand } from './run-command.js';
import { registerAttackCommand } from './attack-command.js';
import { registerPrivacyCommand } from './privacy-command.js';
import { registerDataCommand } from './data-command.js';
import { registerGraphCommand } from './graph-command.js';
import { registerExportCommands } from './export-command.js';
import { applyConventions } from './conventions.js';
import { registerDoctorCommand } from './doctor-command.js';
import { registerDashboardCommand } from './dashboard-command.js';

function packageVersion(): string {
  const pkg = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command('flglm')
    .description(
      'Federated split fine-tuning of LLMs (FL-GLM): clients keep embeddings, first and last blocks; the server trains the middle',
    )
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run `flglm --help` for the command map)')
    // Every message starts with "flglm:", like the errors flglm itself raises.
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'flglm: ')) })
    .exitOverride();
  registerKeygenCommand(program);
  registerFederationCommands(program);
  registerRunCommand(program);
  registerTrainingCommands(program);
  registerGenerateCommand(program);
  registerServeCommand(program);
  registerDataCommand(program);
  registerConfigCommand(program);
  registerGraphCommand(program);
  registerExportCommands(program);
  registerDoctorCommand(program);
  registerAttackCommand(program);
  registerPrivacyCommand(program);
  registerDashboardCommand(program);
  applyConventions(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    console.error(`flglm: ${describeError(err)}`);
    if (process.env.FLGLM_DEBUG && err instanceof Error) console.error(err.stack);
    process.exitCode = err instanceof UserError ? err.exitCode : 1;
  }
}
