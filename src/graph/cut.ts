import { Graph, type Value } from './ir.js';

/**
 * Split a fused forward+backward graph into a forward program that also returns the activations
 * the backward needs ("saved" values) and a backward program that takes them as inputs, instead
 * of recomputing the forward. The cut is where values stop depending on the upstream gradient
 * input: nodes that do not depend on it are forward, the rest backward.
 */
export interface CutGraphs {
  forward: Graph;
  backward: Graph;
  saved: Value[];
}

export function cutAtUpstream(g: Graph, upstream: Value, forwardOutputs: Value[]): CutGraphs {
  const dependsOnUpstream = new Set<Value>([upstream]);
  const backwardNodes: Graph['nodes'] = [];
  const forwardNodes: Graph['nodes'] = [];
  for (const n of g.nodes) {
    if (n.inputs.some((i) => i && dependsOnUpstream.has(i))) {
      backwardNodes.push(n);
      for (const o of n.outputs) dependsOnUpstream.add(o);
    } else forwardNodes.push(n);
  }
  const producedForward = new Set(forwardNodes.flatMap((n) => n.outputs));
  const saved = [
    ...new Set(backwardNodes.flatMap((n) => n.inputs).filter((i): i is Value => !!i && producedForward.has(i))),
  ];
  // Graph outputs that are plain forward values (e.g. a parameter gradient that does not depend on
  // the upstream gradient) must travel too.
  for (const o of g.outputs) if (producedForward.has(o) && !saved.includes(o)) saved.push(o);

  const forward = view(
    g,
    `${g.name}_fwd`,
    g.inputs.filter((v) => v !== upstream),
    forwardNodes,
    [...forwardOutputs, ...saved.filter((v) => !forwardOutputs.includes(v))],
  );
  const usedByBackward = new Set(backwardNodes.flatMap((n) => n.inputs));
  const backwardInputs = [
    upstream,
    ...saved,
    ...g.inputs.filter((v) => v !== upstream && usedByBackward.has(v) && !saved.includes(v)),
  ];
  const backward = view(g, `${g.name}_bwd`, backwardInputs, backwardNodes, g.outputs);
  return { forward, backward, saved };
}

/** A graph over a subset of another graph's nodes and values (same Value objects and names). */
function view(g: Graph, name: string, inputs: Value[], nodes: Graph['nodes'], outputs: Value[]): Graph {
  const v = new Graph(name);
  v.inputs.push(...inputs);
  v.nodes.push(...nodes);
  v.outputs.push(...outputs);
  for (const [val, t] of g.initializers) v.initializers.set(val, t);
  return v;
}
