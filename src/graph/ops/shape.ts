import { sizeOf, type Value } from '../ir.js';
import { broadcastShapes, fail, int, int64s, ints, normAxis } from './core.js';

// ---- shape ops -------------------------------------------------------------------------------

export function reshape(x: Value, shape: readonly number[]): Value {
  const out = shape.map((d, i) => (d === 0 ? x.shape[i] : d));
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const inferred = out.map((d) => (d === -1 ? x.size / known : d));
  if (sizeOf(inferred) !== x.size || !inferred.every(Number.isInteger))
    fail('Reshape', `cannot reshape ${x} to [${shape}]`);
  if (inferred.every((d, i) => d === x.shape[i]) && inferred.length === x.rank) return x;
  return x.graph.addNode('Reshape', [x, int64s(x.graph, inferred)], [{ dtype: x.dtype, shape: inferred }])[0];
}

export function transpose(x: Value, perm?: readonly number[]): Value {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  if (p.length !== x.rank) fail('Transpose', `perm [${p}] does not match ${x}`);
  return x.graph.addNode('Transpose', [x], [{ dtype: x.dtype, shape: p.map((i) => x.shape[i]) }], { perm: ints(p) })[0];
}

export function unsqueeze(x: Value, axes: number[]): Value {
  const rank = x.rank + axes.length;
  const ax = axes.map((a) => normAxis(a, rank)).sort((p, q) => p - q);
  const shape: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[k++]);
  return x.graph.addNode('Unsqueeze', [x, int64s(x.graph, ax)], [{ dtype: x.dtype, shape }])[0];
}

export function squeeze(x: Value, axes: number[]): Value {
  const ax = axes.map((a) => normAxis(a, x.rank));
  for (const a of ax) if (x.shape[a] !== 1) fail('Squeeze', `axis ${a} of ${x} is not 1`);
  return x.graph.addNode(
    'Squeeze',
    [x, int64s(x.graph, ax)],
    [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !ax.includes(i)) }],
  )[0];
}

export function concat(xs: Value[], axis: number): Value {
  const a = normAxis(axis, xs[0].rank);
  const shape = [...xs[0].shape];
  shape[a] = 0;
  for (const x of xs) {
    if (x.rank !== xs[0].rank || x.dtype !== xs[0].dtype || x.shape.some((d, i) => i !== a && d !== xs[0].shape[i]))
      fail('Concat', `incompatible inputs ${xs.join(', ')}`);
    shape[a] += x.shape[a];
  }
  if (xs.length === 1) return xs[0];
  return xs[0].graph.addNode('Concat', xs, [{ dtype: xs[0].dtype, shape }], { axis: int(a) })[0];
}

/** Slice with unit steps along the given axes (start/end clamped like numpy). */
export function slice(x: Value, starts: number[], ends: number[], axes: number[]): Value {
  const shape = [...x.shape];
  const st: number[] = [],
    en: number[] = [];
  axes.forEach((axis, i) => {
    const a = normAxis(axis, x.rank);
    const dim = x.shape[a];
    const s = Math.min(Math.max(starts[i] < 0 ? starts[i] + dim : starts[i], 0), dim);
    const e = Math.min(Math.max(ends[i] < 0 ? ends[i] + dim : ends[i], 0), dim);
    st.push(s);
    en.push(Math.max(e, s));
    shape[a] = Math.max(e - s, 0);
  });
  const g = x.graph;
  return g.addNode(
    'Slice',
    [
      x,
      int64s(g, st),
      int64s(g, en),
      int64s(
        g,
        axes.map((a) => normAxis(a, x.rank)),
      ),
    ],
    [{ dtype: x.dtype, shape }],
  )[0];
}

export function split(x: Value, sizes: number[], axis: number): Value[] {
  const a = normAxis(axis, x.rank);
  if (sizes.reduce((p, q) => p + q, 0) !== x.shape[a])
    fail('Split', `sizes [${sizes}] do not add up to axis ${a} of ${x}`);
  return x.graph.addNode(
    'Split',
    [x, int64s(x.graph, sizes)],
    sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? s : d)) })),
    { axis: int(a) },
  );
}

export function expand(x: Value, shape: readonly number[]): Value {
  const out = broadcastShapes(x.shape, shape, 'Expand');
  return x.graph.addNode('Expand', [x, int64s(x.graph, shape)], [{ dtype: x.dtype, shape: out }])[0];
}

/** Constant-mode Pad; `pads` is [begin_0..begin_n, end_0..end_n] as in ONNX. */
export function pad(x: Value, pads: readonly number[]): Value {
  const shape = x.shape.map((d, i) => d + pads[i] + pads[i + x.rank]);
  return x.graph.addNode('Pad', [x, int64s(x.graph, pads)], [{ dtype: x.dtype, shape }], {
    mode: { type: 'string', value: 'constant' },
  })[0];
}
