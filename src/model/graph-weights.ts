import type { Graph, Value } from '../graph/ir.js';
import type { WeightLookup } from './llama.js';
import type { ParamStore } from './weights.js';

/**
 * Weights as the values of one graph: trainable ones become graph inputs (fed every step, listed in
 * `inputs` in the order given), the rest initializers baked into the ONNX model. Only `owned`
 * weights may be used: a graph that reaches for another part's weight fails when it is built.
 */
export function graphWeights(g: Graph, store: ParamStore, owned: ReadonlySet<string>, owner: string, trainable: readonly string[] = []): { weight: WeightLookup; has: (name: string) => boolean; inputs: Value[] } {
  const values = new Map<string, Value>();
  const inputs = trainable.map((name) => {
    const v = g.input(name, 'float32', store.get(name)!.shape);
    values.set(name, v);
    return v;
  });
  const weight = (name: string): Value => {
    if (!owned.has(name)) throw new Error(`${owner} does not own parameter ${name}`);
    let v = values.get(name);
    if (!v) {
      const p = store.get(name);
      if (!p) throw new Error(`model has no parameter ${name}`);
      v = g.initializer(name, { dtype: 'float32', shape: p.shape, data: p.data });
      values.set(name, v);
    }
    return v;
  };
  return { weight, has: (name) => owned.has(name), inputs };
}
