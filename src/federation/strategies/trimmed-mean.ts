import { z } from 'zod';
import { defineStrategy } from './plugin.js';
import { column, StatelessStrategy, type ClientUpdate, type Params } from './strategy.js';

/** federation.strategy.trim: the fraction of the updates dropped at each end, per coordinate. */
const TRIM = z.number().min(0).lt(0.5).default(0.2);

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018, "Byzantine-robust distributed learning"): per
 * coordinate, the k = floor(trim n) largest and k smallest of the n clients' values are dropped and
 * the rest averaged, unweighted (a claimed sample count buys nothing). With at most k hostile
 * clients every coordinate is a mean of values within the honest clients' range; with fewer
 * clients than 1 / trim nothing is dropped (3 clients need trim >= 1/3 to drop one at each end).
 */
class TrimmedMean extends StatelessStrategy {
  constructor(private readonly trim: number) {
    super();
  }

  aggregate(_round: number, updates: ClientUpdate[]): Params {
    if (updates.length === 0) throw new Error('trimmed mean: no client updates to aggregate');
    const n = updates.length;
    const k = Math.floor(this.trim * n);
    const out: Params = new Map();
    const values = new Float64Array(n);
    for (const [name, first] of updates[0].params) {
      const sets = column(updates, name, first.length, 'trimmed mean');
      const mean = new Float32Array(first.length);
      for (let i = 0; i < first.length; i++) {
        for (let c = 0; c < n; c++) values[c] = sets[c][i];
        values.sort();
        let sum = 0;
        for (let c = k; c < n - k; c++) sum += values[c];
        mean[i] = sum / (n - 2 * k);
      }
      out.set(name, mean);
    }
    return out;
  }
}

export const trimmedMean = defineStrategy({
  options: { trim: TRIM },
  traits: { weightedMean: { needs: 'every update' }, hideable: false, handoff: false },
  server: (o) => new TrimmedMean(o.trim),
});
