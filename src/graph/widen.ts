import type { Graph, Value } from './ir.js';
import { cast, concat, reshape, slice } from './ops.js';

/**
 * Frozen weights held in float16 are graph inputs widened to float32 by a Cast where they are used
 * (graph-weights.ts). The forward uses a widened weight at once; the backward needs it again
 * (dX = dY Wᵀ) a whole forward later, so used as is every widened weight stays alive in between: a
 * float32 copy of all of them at the step's peak, on top of the float16 ones, which is more memory
 * than float32 weights fed zero-copy. `rewidenInBackward` gives the backward its own Cast of each
 * weight instead, so the forward's copy dies after its use.
 *
 * A second Cast of the same input is not enough: ONNX Runtime merges identical nodes (common
 * subexpression elimination) and runs a node whose inputs are all graph inputs wherever its
 * topological order puts it, which for backward nodes was early in the forward (checked in ORT's
 * profile). So the backward's Cast also reads a zero-length slice of the upstream gradient it is
 * multiplied with, concatenated to the weight: it cannot run before that gradient exists, and it is
 * a different node. Measured on 12 layers of a [1024, 896] x [896, 4864] MLP with LoRA (one ORT
 * session, forward + backward): float32 weights peak at 1307 MiB, float16 with the forward's copy
 * kept 1524 MiB, float16 re-widened this way 1153 MiB, at 1.58 vs 1.51 s per run.
 */
const rebuilds = new WeakMap<Value, (after: Value | undefined) => Value>();

/** Record that `widened` is a Cast of a float16 weight input, so backward uses can widen it again. */
export function markWidened(widened: Value): Value {
  const source = widened.producer?.inputs[0];
  if (!source || widened.producer?.op !== 'Cast') throw new Error(`${widened} is not a Cast of a weight`);
  return markLate(widened, (after) => cast(gateAfter(source, after), 'float32'));
}

/**
 * Record that backward uses of `value` (a weight made float32 from graph inputs: a Cast, a
 * dequantization) get their own copy, `rebuild(after)`, built from inputs gated by `gateAfter`.
 */
export function markLate(value: Value, rebuild: (after: Value | undefined) => Value): Value {
  rebuilds.set(value, rebuild);
  return value;
}

/** Rewire the nodes from `firstBackwardNode` on to late copies of the widened weights they read. */
export function rewidenInBackward(g: Graph, firstBackwardNode: number): void {
  const late = new Map<Value, Value>();
  for (let k = firstBackwardNode; k < g.nodes.length; k++) {
    const node = g.nodes[k];
    const inputs = node.inputs as (Value | null)[];
    inputs.forEach((v, i) => {
      const rebuild = v && rebuilds.get(v);
      if (!v || !rebuild) return;
      let copy = late.get(v);
      if (!copy) {
        const before = g.nodes.length;
        copy = rebuild(inputs.find((u, j) => j !== i && u?.dtype === 'float32') ?? undefined);
        const added = g.nodes.splice(before);
        g.nodes.splice(k, 0, ...added); // just before the first backward use
        k += added.length;
        late.set(v, copy);
      }
      inputs[i] = copy;
    });
  }
}

/** `x` as a value that cannot be computed before `after` exists (see above); `x` itself without one. */
export function gateAfter(x: Value, after: Value | undefined): Value {
  if (!after) return x;
  const none = cast(slice(reshape(after, [-1]), [0], [0], [0]), x.dtype);
  return reshape(concat([reshape(x, [-1]), none], 0), x.shape);
}
