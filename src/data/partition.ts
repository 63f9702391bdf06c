import { Rng } from '../util/rng.js';
import type { Document } from './corpora.js';

/**
 * Split documents into a held-out test set and one silo per client.
 * - natural: whole sources go to clients (each source to one client; each label's sources are dealt
 *   largest first from client 0, so the largest silos see every label),
 * - iid: shuffled and dealt evenly,
 * - dirichlet:ALPHA: per label, client shares drawn from Dirichlet(ALPHA) (label skew).
 * The test set is a stratified `testFraction` of every source.
 */
export function partitionDocuments(
  docs: Document[],
  clients: number,
  rule: string,
  testFraction: number,
  seed: number,
): { silos: Document[][]; test: Document[] } {
  const rng = new Rng(seed);
  const bySource = groupBy(docs, (d) => d.source);
  const train: Document[] = [];
  const test: Document[] = [];
  for (const source of [...bySource.keys()].sort()) {
    const items = rng.shuffle([...bySource.get(source)!]);
    const nTest = Math.max(1, Math.round(items.length * testFraction));
    test.push(...items.slice(0, nTest));
    train.push(...items.slice(nTest));
  }
  const silos: Document[][] = Array.from({ length: clients }, () => []);
  if (rule === 'iid') {
    rng.shuffle(train).forEach((d, i) => silos[i % clients].push(d));
  } else if (rule === 'natural') {
    const sources = groupBy(train, (d) => d.source);
    const byLabel = groupBy([...sources.keys()].sort(), (s) => sources.get(s)![0].label);
    for (const label of [...byLabel.keys()].sort()) {
      // Largest sources first, dealt from client 0, so the biggest silos hold every label.
      const ordered = byLabel
        .get(label)!
        .sort((a, b) => sources.get(b)!.length - sources.get(a)!.length || a.localeCompare(b));
      ordered.forEach((source, i) => silos[i % clients].push(...sources.get(source)!));
    }
  } else {
    const alpha = Number(rule.split(':')[1]);
    for (const items of groupBy(train, (d) => d.label).values()) {
      const shares = dirichlet(rng, alpha, clients);
      const shuffled = rng.shuffle([...items]);
      let start = 0;
      shares.forEach((share, c) => {
        const end = c === clients - 1 ? shuffled.length : start + Math.round(share * shuffled.length);
        silos[c].push(...shuffled.slice(start, end));
        start = end;
      });
    }
  }
  return { silos: silos.map((s) => rng.shuffle(s)), test: rng.shuffle(test) };
}

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}

/** Dirichlet(alpha) via normalised Gamma draws (Marsaglia-Tsang, with the alpha < 1 boost). */
function dirichlet(rng: Rng, alpha: number, n: number): number[] {
  const gamma = (a: number): number => {
    if (a < 1) return gamma(a + 1) * Math.pow(rng.uniform(), 1 / a);
    const d = a - 1 / 3,
      c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = rng.normal();
      const v = Math.pow(1 + c * x, 3);
      if (v > 0 && Math.log(rng.uniform()) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
    }
  };
  const g = Array.from({ length: n }, () => gamma(alpha));
  const sum = g.reduce((a, b) => a + b, 0);
  return g.map((x) => x / sum);
}
