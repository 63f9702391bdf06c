import { StatelessStrategy, type ClientUpdate, type Params } from './strategy.js';

/**
 * FedMedian (Yin et al. 2018, "Byzantine-robust distributed learning"): the coordinate-wise median
 * of the clients' parameters (the mean of the middle two for an even count). Sample counts are
 * ignored, so neither a claimed weight nor a few extreme updates can pull the result: with k of n
 * clients hostile, every coordinate stays within the honest clients' range while k < n/2.
 */
export class FedMedian extends StatelessStrategy {
  readonly name = 'fedmedian';
  aggregate(_round: number, updates: ClientUpdate[]): Params {
    if (updates.length === 0) throw new Error('no client updates to aggregate');
    const out: Params = new Map();
    const column = new Float64Array(updates.length);
    for (const [name, first] of updates[0].params) {
      const sets = updates.map((u) => u.params.get(name));
      if (sets.some((s) => !s || s.length !== first.length))
        throw new Error(`cannot take the median of ${name}: an update has no or a differently shaped tensor`);
      const med = new Float32Array(first.length);
      const mid = updates.length >> 1;
      for (let i = 0; i < first.length; i++) {
        for (let k = 0; k < sets.length; k++) column[k] = sets[k]![i];
        column.sort();
        med[i] = updates.length % 2 ? column[mid] : (column[mid - 1] + column[mid]) / 2;
      }
      out.set(name, med);
    }
    return out;
  }
}
