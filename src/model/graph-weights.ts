import type { Graph, TensorData, Value } from '../graph/ir.js';
import { cast, matmul } from '../graph/ops.js';
import { markWidened } from '../graph/widen.js';
import type { WeightLookup } from './llama.js';
import { float32Of, type ParamStore, type StoredParam } from './weights.js';
import { quantizedInputs, quantizedTimes } from './quantized-matmul.js';

/**
 * How a graph gets its frozen weights:
 * - input: a graph input like the trainable ones, fed from the store at every run. onnxruntime-node
 *   wraps a fed Float32Array without copying it (measured: a 1 GiB input costs 0.2 ms per run and no
 *   memory), so every program of a part (forward, backward, step, eval) and every trunk replica
 *   reads the one copy in the store. As initializers, each compiled program held its own copy, and
 *   ORT's constant folding added transposed ones (a Qwen2.5-0.5B LoRA step peaked at 24 GB).
 * - initializer: baked into the ONNX file, for a self-contained export (`flglm export --onnx`).
 */
export type FrozenWeights = 'input' | 'initializer';

/**
 * Weights as the values of one graph: trainable ones become graph inputs (listed in `inputs` in the
 * order given, for autodiff), frozen ones inputs too (or initializers, see FrozenWeights), created
 * when first used. Only `owned` weights may be used: a graph that reaches for another part's weight
 * fails when it is built.
 */
export function graphWeights(
  g: Graph,
  store: ParamStore,
  owned: ReadonlySet<string>,
  owner: string,
  trainable: readonly string[] = [],
  frozen: FrozenWeights = 'input',
): {
  weight: WeightLookup;
  has: (name: string) => boolean;
  inputs: Value[];
  times: (x: Value, name: string) => Value;
} {
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
      if (frozen === 'initializer') v = g.initializer(name, { dtype: 'float32', shape: p.shape, data: float32Of(p) });
      else if (p.half) v = markWidened(cast(g.input(name, 'float16', p.shape), 'float32'));
      else v = g.input(name, 'float32', p.shape);
      values.set(name, v);
    }
    return v;
  };
  // x @ W for a linear weight: a quantized kernel where it is held quantized (quantized-matmul.ts).
  const quantized = new Map<string, ReturnType<typeof quantizedInputs>>();
  const times = (x: Value, name: string): Value => {
    const p = store.get(name);
    if (!p?.quant || frozen === 'initializer') return matmul(x, weight(name));
    if (!owned.has(name)) throw new Error(`${owner} does not own parameter ${name}`);
    let q = quantized.get(name);
    if (!q) quantized.set(name, (q = quantizedInputs(g, name, p.quant)));
    return quantizedTimes(x, q);
  };
  return { weight, has: (name) => owned.has(name), inputs, times };
}

/**
 * The feed of a graph input for a stored weight: float32, the float16 bits of a half weight (see
 * weights.ts), or one of a quantized weight's tensors (`name#q`, `name#scales`; quantized-matmul.ts).
 */
export function weightFeed(p: StoredParam, input?: string): TensorData {
  if (p.quant) return input?.endsWith('#scales') ? p.quant.scales : p.quant.q;
  return p.half
    ? { dtype: 'float16', shape: p.shape, data: p.half }
    : { dtype: 'float32', shape: p.shape, data: p.data! };
}

/** The feed of a graph input named after a stored weight (a quantized one's `name#q` and `name#scales` too). */
export function storedFeed(store: ParamStore, input: string): TensorData | undefined {
  const p = store.get(input) ?? store.get(input.replace(/#(q|scales)$/, ''));
  return p ? weightFeed(p, input) : undefined;
}
