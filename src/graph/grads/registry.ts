import type { Node, Value } from '../ir.js';

/**
 * One gradient rule per op, like tfjs-core's gradient registry. A rule receives the forward node
 * and the upstream gradient of each output (null where an output has none) and returns, for each
 * input, a builder of its gradient (or null where the input has no gradient). The autodiff engine
 * only calls the builders for inputs that need a gradient.
 */
export type GradFn = (node: Node, dys: (Value | null)[]) => ((() => Value) | null)[];

const rules = new Map<string, GradFn>();

export function registerGradient(op: string, fn: GradFn): void {
  if (rules.has(op)) throw new Error(`gradient for ${op} registered twice`);
  rules.set(op, fn);
}

export function gradientRule(op: string): GradFn | undefined {
  return rules.get(op);
}

export function registeredGradientOps(): string[] {
  return [...rules.keys()].sort();
}
