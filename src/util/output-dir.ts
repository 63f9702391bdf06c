import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UserError } from './errors.js';

/**
 * Create an output folder after checking that it can be: the nearest existing ancestor must be a
 * writable directory. Checked first because `mkdirSync(..., {recursive: true})` under a virtual
 * filesystem such as /proc spins forever in Node 20 instead of failing.
 */
export function prepareOutputDir(path: string, what: string): string {
  const full = resolve(path);
  if (/^\/(proc|sys)(\/|$)/.test(full))
    throw new UserError(
      `${what} ${path} is under a virtual filesystem (/proc, /sys). Fix: choose a folder on a real disk`,
    );
  let existing = full;
  for (;;) {
    try {
      const st = statSync(existing);
      if (!st.isDirectory())
        throw new UserError(`${what} ${path}: ${existing} is a file, not a folder. Fix: choose another path`);
      break;
    } catch (e) {
      if (e instanceof UserError) throw e;
      const up = dirname(existing);
      if (up === existing) break;
      existing = up;
    }
  }
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch {
    throw new UserError(
      `${what} ${path}: ${existing} is not writable. Fix: choose a folder you can write to, or change its permissions`,
    );
  }
  mkdirSync(full, { recursive: true });
  return full;
}
