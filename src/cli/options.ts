import { UserError } from '../util/errors.js';

/** A commander option parser for an integer of at least `min`, with a one-line error naming the flag. */
export const intOption =
  (flag: string, min: number) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UserError(`${flag}: expected an integer >= ${min}, got "${v}"`);
    return n;
  };

/** Collects a repeatable option's values (`--set a=1 --set b=2`). */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];
export const SET_HELP =
  'override a config key, repeatable: --set federation.rounds=8 --set data.silos=[a,b] (values are YAML)';

/** A commander option parser for a finite number of at least `min` (and at most `max`). */
export const numberOption =
  (flag: string, min: number, max = Number.POSITIVE_INFINITY) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max)
      throw new UserError(
        `${flag}: expected a number ${max < Number.POSITIVE_INFINITY ? `from ${min} to ${max}` : `>= ${min}`}, got "${v}"`,
      );
    return n;
  };

/** A TCP port: 0 (any free port) to 65535. */
export const portOption =
  (flag: string) =>
  (v: string): number => {
    const n = intOption(flag, 0)(v);
    if (n > 65535) throw new UserError(`${flag}: expected a port from 0 to 65535, got "${v}"`);
    return n;
  };

/** A share strictly between 0 and 1. */
export const fraction =
  (flag: string) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !(n > 0 && n < 1))
      throw new UserError(`${flag}: expected a number between 0 and 1 (exclusive), got "${v}"`);
    return n;
  };
