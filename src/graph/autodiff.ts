import type { Node, Value } from './ir.js';
import { add, expand, scalarLike } from './ops.js';
import { gradientRule } from './grads/registry.js';
import { rewidenInBackward } from './widen.js';
import './grads/index.js';

/**
 * Reverse-mode autodiff over the IR. Appends the backward nodes to the same graph and returns the
 * gradient of sum(outputs[i] * seeds[i]) with respect to each of `wrt` (null where `wrt` does not
 * influence the outputs). A null seed means "ones" (use it for a scalar loss).
 *
 * Like micrograd: walk the nodes that lie between `wrt` and `outputs` in reverse topological order,
 * ask each op's rule for its inputs' gradients and sum contributions where a value fans out.
 */
export function gradients(outputs: Value[], seeds: (Value | null)[], wrt: Value[]): (Value | null)[] {
  const graph = outputs[0].graph;
  const nodes = graph.nodes.slice();

  // Nodes whose outputs depend on some wrt value ...
  const dependsOnWrt = new Set<Value>(wrt);
  const forwardReach = new Set<Node>();
  for (const n of nodes) {
    if (n.inputs.some((i) => i && dependsOnWrt.has(i))) {
      forwardReach.add(n);
      for (const o of n.outputs) if (o.isFloat) dependsOnWrt.add(o);
    }
  }
  // ... and that some output depends on.
  const neededByOutput = new Set<Value>(outputs);
  const path: Node[] = [];
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k];
    if (!forwardReach.has(n) || !n.outputs.some((o) => neededByOutput.has(o))) continue;
    path.push(n);
    for (const i of n.inputs) if (i) neededByOutput.add(i);
  }

  const contributions = new Map<Value, Value[]>();
  const accumulate = (v: Value, g: Value) => {
    const list = contributions.get(v);
    if (list) list.push(g);
    else contributions.set(v, [g]);
  };
  const gradOf = (v: Value): Value | null => {
    const list = contributions.get(v);
    if (!list || list.length === 0) return null;
    if (list.length > 1) {
      const sum = list.reduce((a, b) => add(a, b));
      contributions.set(v, [sum]);
      return sum;
    }
    return list[0];
  };

  outputs.forEach((o, i) => {
    const seed = seeds[i] ?? expand(scalarLike(o, 1), o.shape);
    if (seed.dtype !== o.dtype || seed.shape.join() !== o.shape.join()) {
      throw new Error(`gradient seed ${seed} does not match output ${o}`);
    }
    accumulate(o, seed);
  });

  for (const n of path) {
    const dys = n.outputs.map(gradOf);
    if (dys.every((d) => d === null)) continue;
    const rule = gradientRule(n.op);
    if (!rule) throw new Error(`no gradient rule registered for op ${n.op}`);
    const builders = rule(n, dys);
    n.inputs.forEach((inp, k) => {
      if (!inp || !inp.isFloat || !dependsOnWrt.has(inp)) return;
      const build = builders[k];
      if (!build) return;
      const g = build();
      if (g.shape.join() !== inp.shape.join())
        throw new Error(`gradient rule for ${n.op} returned ${g} for input ${inp}`);
      accumulate(inp, g);
    });
  }
  const grads = wrt.map(gradOf);
  rewidenInBackward(graph, nodes.length); // frozen float16 weights: a late copy for the backward (widen.ts)
  return grads;
}
