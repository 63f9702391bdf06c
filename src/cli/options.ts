import { UserError } from '../util/errors.js';

/** A commander option parser for an integer of at least `min`, with a one-line error naming the flag. */
export const intOption = (flag: string, min: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UserError(`${flag}: expected an integer >= ${min}, got "${v}"`);
  return n;
};
