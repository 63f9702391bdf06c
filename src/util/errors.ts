/**
 * An error meant for the person at the terminal: one line saying what went wrong, where, and the
 * fix. The CLI prints `message` alone (no stack) and exits with `exitCode`.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function describeError(err: unknown): string {
  if (err instanceof UserError) return err.message;
  if (err instanceof Error) return err.message.split('\n')[0];
  return String(err);
}
