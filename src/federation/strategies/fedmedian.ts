import { defineStrategy } from './plugin.js';
import { column, StatelessStrategy, type ClientUpdate, type Params } from './strategy.js';

/**
 * FedMedian (Yin et al. 2018, "Byzantine-robust distributed learning"): the coordinate-wise median
 * of the clients' parameters (the mean of the middle two for an even count). Sample counts are
 * ignored, so neither a claimed weight nor a few extreme updates can pull the result: with k of n
 * clients hostile, every coordinate stays within the honest clients' range while k < n/2.
 */
class FedMedian extends StatelessStrategy {
  aggregate(_round: number, updates: ClientUpdate[]): Params {
    if (updates.length === 0) throw new Error('no client updates to aggregate');
    const out: Params = new Map();
    const values = new Float64Array(updates.length);
    for (const [name, first] of updates[0].params) {
      const sets = column(updates, name, first.length, 'median');
      const med = new Float32Array(first.length);
      const mid = updates.length >> 1;
      for (let i = 0; i < first.length; i++) {
        for (let k = 0; k < sets.length; k++) values[k] = sets[k][i];
        values.sort();
        med[i] = updates.length % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
      }
      out.set(name, med);
    }
    return out;
  }
}

export const fedmedian = defineStrategy({
  options: {},
  traits: { weightedMean: { needs: 'every update' }, hideable: false, handoff: false },
  server: () => new FedMedian(),
});
