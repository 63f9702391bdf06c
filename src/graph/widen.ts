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
const sources = new WeakMap<Value, Value>();

/** Record that `widened` is a Cast of a float16 weight input, so backward uses can widen it again. */
export function markWidened(widened: Value): Value {
  const source = widened.producer?.inputs[0];
  if (!source || widened.producer?.op !== 'Cast') throw new Error(`${widened} is not a Cast of a weight`);
  sources.set(widened, source);
  return widened;
}

/** Rewire the nodes from `firstBackwardNode` on to late copies of the widened weights they read. */
export function rewidenInBackward(g: Graph, firstBackwardNode: number): void {
  const late = new Map<Value, Value>();
  for (let k = firstBackwardNode; k < g.nodes.length; k++) {
    const node = g.nodes[k];
    const inputs = node.inputs as (Value | null)[];
    inputs.forEach((v, i) => {
      const source = v && sources.get(v);
      if (!v || !source) return;
      let copy = late.get(v);
      if (!copy) {
        const before = g.nodes.length;
        copy = widenAfter(
          source,
          inputs.find((u, j) => j !== i && u?.dtype === 'float32'),
        );
        const added = g.nodes.splice(before);
        g.nodes.splice(k, 0, ...added); // just before the first backward use
        k += added.length;
        late.set(v, copy);
      }
      inputs[i] = copy;
    });
  }
}

/** Cast(weight) that cannot run before `after` exists (see above); a plain Cast without one. */
function widenAfter(weight: Value, after: Value | null | undefined): Value {
  if (!after) return cast(weight, 'float32');
  const none = cast(slice(reshape(after, [-1]), [0], [0], [0]), weight.dtype);
  return cast(reshape(concat([reshape(weight, [-1]), none], 0), weight.shape), 'float32');
}
