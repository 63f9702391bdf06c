// Op builders: each infers its output shape statically and appends one ONNX node. One module per
// kind of op under ops/; this file is the one import the rest of the code uses.
export {
  attrInt,
  attrInts,
  broadcastShapes,
  constant,
  constInts,
  int64s,
  normAxis,
  ONNX_DTYPE,
  scalar,
  scalarLike,
} from './ops/core.js';
export * from './ops/elementwise.js';
export * from './ops/linalg.js';
export * from './ops/shape.js';
export * from './ops/indexing.js';
export * from './ops/quant.js';
