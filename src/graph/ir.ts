/**
 * A small typed graph IR over ONNX ops. Shapes are static (fixed at build time): flglm builds one
 * graph per (batch, sequence) shape, which keeps shape inference and broadcasting gradients exact
 * and lets ONNX Runtime plan memory once.
 */
/**
 * float16: frozen weights kept in half precision (graph inputs widened by a Cast, see graph-weights.ts);
 * int8 and uint8: quantized frozen weights (model/quantize.ts).
 */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool' | 'float16' | 'int8' | 'uint8';
export type Shape = readonly number[];
export type TypedArrayOf =
  Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array | Int8Array;

export type Attr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: TensorData };

export interface TensorData {
  dtype: DType;
  shape: Shape;
  data: TypedArrayOf;
}

export class Value {
  producer: Node | null = null;
  constructor(
    readonly graph: Graph,
    readonly id: number,
    public name: string,
    readonly dtype: DType,
    readonly shape: Shape,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get isFloat(): boolean {
    return this.dtype === 'float32' || this.dtype === 'float64';
  }
  toString(): string {
    return `${this.name}:${this.dtype}[${this.shape.join(',')}]`;
  }
}

export interface Node {
  readonly op: string;
  readonly inputs: (Value | null)[];
  readonly outputs: Value[];
  readonly attrs: Readonly<Record<string, Attr>>;
  readonly domain?: string;
}

export class Graph {
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly nodes: Node[] = [];
  /** Constants and frozen weights, emitted as ONNX initializers. */
  readonly initializers = new Map<Value, TensorData>();
  private nextId = 0;
  private readonly usedNames = new Set<string>();

  constructor(readonly name = 'flglm') {}

  uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.usedNames.has(name); i++) name = `${base}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  newValue(base: string, dtype: DType, shape: Shape): Value {
    return new Value(this, this.nextId++, this.uniqueName(base), dtype, [...shape]);
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    if (this.usedNames.has(name)) throw new Error(`graph input name "${name}" is already used`);
    const v = this.newValue(name, dtype, shape);
    this.inputs.push(v);
    return v;
  }

  initializer(name: string, tensor: TensorData): Value {
    const v = this.newValue(name, tensor.dtype, tensor.shape);
    this.initializers.set(v, tensor);
    return v;
  }

  addNode(
    op: string,
    inputs: (Value | null)[],
    outputs: { dtype: DType; shape: Shape }[],
    attrs: Record<string, Attr> = {},
    domain?: string,
  ): Value[] {
    for (const i of inputs) if (i && i.graph !== this) throw new Error(`value ${i.name} belongs to another graph`);
    const outs = outputs.map((o, k) =>
      this.newValue(`${op.toLowerCase()}${outputs.length > 1 ? k : ''}_${this.nextId}`, o.dtype, o.shape),
    );
    const node: Node = { op, inputs, outputs: outs, attrs, domain };
    for (const o of outs) o.producer = node;
    this.nodes.push(node);
    return outs;
  }

  output(value: Value, name?: string): Value {
    if (name && value.name !== name) {
      if (this.inputs.includes(value) || this.initializers.has(value) || this.outputs.includes(value)) {
        value = this.addNode('Identity', [value], [{ dtype: value.dtype, shape: value.shape }])[0];
      }
      this.usedNames.delete(value.name);
      if (this.usedNames.has(name)) throw new Error(`graph output name "${name}" is already used`);
      this.usedNames.add(name);
      value.name = name;
    }
    this.outputs.push(value);
    return value;
  }
}

export function sizeOf(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function typedArrayFor(dtype: DType, n: number): TypedArrayOf {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'bool':
    case 'uint8':
      return new Uint8Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'float16':
      return new Uint16Array(n);
  }
}
