import { ProtoWriter } from './protobuf.js';
import { Graph, Value, type Attr, type TensorData } from './ir.js';
import { ONNX_DTYPE } from './ops.js';

/** ONNX opset and IR version flglm emits (opset 17: ReduceSum axes as input, ReduceMean attr). */
export const OPSET = 17;
const IR_VERSION = 8;

// Field numbers from onnx.proto.
const F = {
  model: { irVersion: 1, producerName: 2, producerVersion: 3, graph: 7, opsetImport: 8 },
  opset: { domain: 1, version: 2 },
  graph: { node: 1, name: 2, initializer: 5, input: 11, output: 12 },
  node: { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 },
  attr: { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, type: 20 },
  tensor: { dims: 1, dataType: 2, name: 8, rawData: 9, externalData: 13, dataLocation: 14 },
  entry: { key: 1, value: 2 },
  valueInfo: { name: 1, type: 2 },
  type: { tensorType: 1 },
  tensorType: { elemType: 1, shape: 2 },
  shape: { dim: 1 },
  dim: { value: 1 },
};
const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;

function tensorBytes(t: TensorData): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Where an initializer's bytes went in the external data file. */
interface ExternalPlacement {
  location: string;
  offset: number;
  length: number;
}

function writeTensor(w: ProtoWriter, name: string, t: TensorData, external?: ExternalPlacement): void {
  if (t.shape.length) w.packedInts(F.tensor.dims, t.shape);
  w.int(F.tensor.dataType, ONNX_DTYPE[t.dtype]);
  if (name) w.string(F.tensor.name, name);
  if (!external) {
    w.bytes(F.tensor.rawData, tensorBytes(t));
    return;
  }
  for (const [key, value] of [
    ['location', external.location],
    ['offset', String(external.offset)],
    ['length', String(external.length)],
  ]) {
    w.message(F.tensor.externalData, (e) => e.string(F.entry.key, key).string(F.entry.value, value));
  }
  w.int(F.tensor.dataLocation, 1); // EXTERNAL
}

function writeValueInfo(w: ProtoWriter, v: Value): void {
  w.string(F.valueInfo.name, v.name);
  w.message(F.valueInfo.type, (tw) =>
    tw.message(F.type.tensorType, (tt) => {
      tt.int(F.tensorType.elemType, ONNX_DTYPE[v.dtype]);
      tt.message(F.tensorType.shape, (sw) => {
        for (const d of v.shape) sw.message(F.shape.dim, (dw) => dw.int(F.dim.value, d));
      });
    }),
  );
}

function writeAttr(w: ProtoWriter, name: string, a: Attr): void {
  w.string(F.attr.name, name);
  switch (a.type) {
    case 'int':
      w.int(F.attr.i, a.value);
      break;
    case 'float':
      w.float(F.attr.f, a.value);
      break;
    case 'ints':
      w.packedInts(F.attr.ints, a.value);
      break;
    case 'floats':
      w.packedFloats(F.attr.floats, a.value);
      break;
    case 'string':
      w.string(F.attr.s, a.value);
      break;
    case 'tensor':
      w.message(F.attr.t, (tw) => writeTensor(tw, '', a.value));
      break;
  }
  w.int(F.attr.type, ATTR_TYPE[a.type]);
}

/** Keep only the nodes and initializers the graph outputs depend on. */
function liveSubgraph(g: Graph): { nodes: Graph['nodes']; initializers: [Value, TensorData][] } {
  const live = new Set<Value>(g.outputs);
  const nodes: Graph['nodes'] = [];
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (!n.outputs.some((o) => live.has(o))) continue;
    nodes.push(n);
    for (const i of n.inputs) if (i) live.add(i);
  }
  nodes.reverse();
  return { nodes, initializers: [...g.initializers].filter(([v]) => live.has(v)) };
}

/** Serialise the graph to ONNX ModelProto bytes, loadable with `InferenceSession.create(bytes)`. */
export function toOnnx(g: Graph): Uint8Array {
  return serialise(g, null).model;
}

/**
 * The graph with its large initializers in a separate data file (ONNX external data), as a model
 * over protobuf's 2 GiB limit must be. `location` is the data file's name, next to the model file;
 * each tensor starts on a 4 KiB boundary so that ONNX Runtime can memory-map it.
 */
export function toOnnxWithExternalData(
  g: Graph,
  location: string,
  minBytes = 1024,
): { model: Uint8Array; data: Uint8Array[] } {
  const data: Uint8Array[] = [];
  let offset = 0;
  const place = (t: TensorData): ExternalPlacement | undefined => {
    const bytes = tensorBytes(t);
    if (bytes.byteLength < minBytes) return undefined;
    const pad = (4096 - (offset % 4096)) % 4096;
    if (pad) data.push(new Uint8Array(pad));
    offset += pad;
    data.push(bytes);
    const at = { location, offset, length: bytes.byteLength };
    offset += bytes.byteLength;
    return at;
  };
  return { model: serialise(g, place).model, data };
}

function serialise(g: Graph, place: ((t: TensorData) => ExternalPlacement | undefined) | null): { model: Uint8Array } {
  const { nodes, initializers } = liveSubgraph(g);
  const w = new ProtoWriter();
  w.int(F.model.irVersion, IR_VERSION);
  w.string(F.model.producerName, 'flglm');
  w.string(F.model.producerVersion, '0.1');
  w.message(F.model.opsetImport, (o) => o.string(F.opset.domain, '').int(F.opset.version, OPSET));
  for (const domain of new Set(nodes.flatMap((n) => (n.domain ? [n.domain] : []))))
    w.message(F.model.opsetImport, (o) => o.string(F.opset.domain, domain).int(F.opset.version, 1)); // com.microsoft: 1
  w.message(F.model.graph, (gw) => {
    nodes.forEach((n, k) => {
      gw.message(F.graph.node, (nw) => {
        for (const i of n.inputs) nw.string(F.node.input, i ? i.name : '');
        for (const o of n.outputs) nw.string(F.node.output, o.name);
        nw.string(F.node.name, `${n.op}_${k}`);
        nw.string(F.node.opType, n.op);
        if (n.domain) nw.string(F.node.domain, n.domain);
        for (const [name, a] of Object.entries(n.attrs)) nw.message(F.node.attribute, (aw) => writeAttr(aw, name, a));
      });
    });
    gw.string(F.graph.name, g.name);
    for (const [v, t] of initializers) gw.message(F.graph.initializer, (tw) => writeTensor(tw, v.name, t, place?.(t)));
    for (const v of g.inputs) gw.message(F.graph.input, (vw) => writeValueInfo(vw, v));
    for (const v of g.outputs) gw.message(F.graph.output, (vw) => writeValueInfo(vw, v));
  });
  return { model: w.finish() };
}
