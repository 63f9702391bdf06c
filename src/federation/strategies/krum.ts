import { z } from 'zod';
import { defineStrategy } from './plugin.js';
import { column, StatelessStrategy, type ClientUpdate, type Params } from './strategy.js';

/** federation.strategy.byzantine: f, how many of a round's updates may be hostile. */
const BYZANTINE = z.number().int().min(0).default(1);
/** federation.strategy.krum_select: m, how many of the best-scored updates are averaged (1: Krum). */
const SELECT = z.number().int().positive().default(1);

/**
 * Krum and multi-Krum (Blanchard et al. 2017, "Machine learning with adversaries: Byzantine
 * tolerant gradient descent"): each update, taken as one vector over all client-part parameters,
 * is scored by the sum of its squared distances to its n - f - 2 nearest other updates; Krum's
 * result is the update of lowest score, multi-Krum's the unweighted mean of the m lowest (at most
 * n - f of them; ties go to the update listed first). Needs n >= 2f + 3: then an update that f
 * hostile clients place far from the honest ones scores high and is never chosen.
 */
class Krum extends StatelessStrategy {
  constructor(
    private readonly f: number,
    private readonly m: number,
  ) {
    super();
  }

  aggregate(_round: number, updates: ClientUpdate[]): Params {
    const n = updates.length;
    if (n < 2 * this.f + 3)
      throw new Error(`krum: ${n} updates cannot tolerate byzantine: ${this.f} (it needs 2f + 3 = ${2 * this.f + 3})`);
    const first = updates[0].params;
    const sets = [...first].map(([name, t]) => column(updates, name, t.length, 'Krum distance'));
    const dist = (a: number, b: number) => {
      let sum = 0;
      for (const s of sets) for (let i = 0; i < s[a].length; i++) sum += (s[a][i] - s[b][i]) ** 2;
      return sum;
    };
    const d = Array.from({ length: n }, () => new Float64Array(n));
    for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) d[a][b] = d[b][a] = dist(a, b);
    const score = d.map((row, a) =>
      [...row]
        .filter((_, b) => b !== a)
        .sort((x, y) => x - y)
        .slice(0, n - this.f - 2)
        .reduce((s, x) => s + x, 0),
    );
    const chosen = [...score.keys()]
      .sort((a, b) => score[a] - score[b] || a - b)
      .slice(0, Math.min(this.m, n - this.f));
    const out: Params = new Map();
    [...first.keys()].forEach((name, k) => {
      const mean = new Float32Array(sets[k][0].length);
      for (const c of chosen) for (let i = 0; i < mean.length; i++) mean[i] += sets[k][c][i] / chosen.length;
      out.set(name, mean);
    });
    return out;
  }
}

export const krum = defineStrategy({
  options: { byzantine: BYZANTINE, krum_select: SELECT },
  traits: { weightedMean: { needs: 'every update' }, hideable: false, handoff: false },
  server: (o) => new Krum(o.byzantine, o.krum_select),
  check: (o, { clients }) =>
    clients < 2 * o.byzantine + 3
      ? [
          {
            key: 'byzantine',
            message: `krum with byzantine: ${o.byzantine} needs at least 2f + 3 = ${2 * o.byzantine + 3} clients, federation.clients is ${clients}; lower byzantine or add clients`,
          },
        ]
      : [],
});
