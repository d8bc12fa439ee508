/**
 * A minimal ONNX writer: the protobuf wire encoding of the few messages an inference graph needs
 * (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto), field numbers from
 * onnx/onnx.proto3. Messages are built bottom-up as lists of byte chunks, so a large weight table is copied
 * once, into the final buffer. No dependency: the format is stable and the subset is small.
 */

/** ONNX TensorProto.DataType values used here. */
export const DT = { FLOAT: 1, INT32: 6, INT64: 7, BOOL: 9 } as const;
export type DataType = (typeof DT)[keyof typeof DT];

/** An encoded message: chunks to concatenate, and their total length. */
class Msg {
  readonly parts: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }

  private key(field: number, wire: number): void {
    this.push(varint(BigInt((field << 3) | wire)));
  }

  int(field: number, v: number | bigint): this {
    this.key(field, 0);
    this.push(varint(BigInt.asUintN(64, BigInt(v))));
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.push(varint(BigInt(b.length)));
    this.push(b);
    return this;
  }

  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  msg(field: number, m: Msg): this {
    this.key(field, 2);
    this.push(varint(BigInt(m.length)));
    for (const p of m.parts) this.push(p);
    return this;
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

function varint(v: bigint): Uint8Array {
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return Uint8Array.from(out);
}

/** An initializer (constant tensor). Int64 data is given as numbers (exact below 2⁵³) or as a BigInt64Array. */
export interface Tensor {
  name: string;
  type: DataType;
  dims: number[];
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array;
}

export type AttrValue = number | string | number[] | { float: number } | { tensor: Tensor };

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
  name?: string;
}

/** A graph input or output: element type and shape (a string is a symbolic dimension, e.g. 'batch'). */
export interface ValueInfo {
  name: string;
  type: DataType;
  shape: Array<number | string>;
  doc?: string;
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Tensor[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  doc?: string;
}

function tensorMsg(t: Tensor): Msg {
  const m = new Msg();
  for (const d of t.dims) m.int(1, d);
  m.int(2, t.type);
  m.str(8, t.name);
  // raw_data is little-endian: the typed arrays of every platform Node runs on are.
  const d = t.data;
  m.bytes(9, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  return m;
}

function attrMsg(name: string, v: AttrValue): Msg {
  const m = new Msg().str(1, name);
  // AttributeProto: f=2, i=3, s=4, t=5, ints=8; type=20 (FLOAT 1, INT 2, STRING 3, TENSOR 4, INTS 7).
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`onnx attribute ${name}: ${v} is not an integer (use { float })`);
    m.int(3, v).int(20, 2);
  } else if (typeof v === 'string') m.str(4, v).int(20, 3);
  else if (Array.isArray(v)) {
    for (const x of v) m.int(8, x);
    m.int(20, 7);
  } else if ('float' in v) m.float(2, v.float).int(20, 1);
  else m.msg(5, tensorMsg(v.tensor)).int(20, 4);
  return m;
}

function nodeMsg(n: Node, i: number): Msg {
  const m = new Msg();
  for (const x of n.inputs) m.str(1, x);
  for (const x of n.outputs) m.str(2, x);
  m.str(3, n.name ?? `${n.op}_${i}`);
  m.str(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) m.msg(5, attrMsg(k, v));
  return m;
}

function valueInfoMsg(v: ValueInfo): Msg {
  const shape = new Msg();
  for (const d of v.shape) shape.msg(1, typeof d === 'number' ? new Msg().int(1, d) : new Msg().str(2, d));
  const tensorType = new Msg().int(1, v.type).msg(2, shape);
  const m = new Msg().str(1, v.name).msg(2, new Msg().msg(1, tensorType));
  if (v.doc) m.str(3, v.doc);
  return m;
}

export interface ModelInfo {
  producer: string;
  producerVersion: string;
  /** The default-domain opset (17: LayerNormalization is available, Reduce* except ReduceSum keep `axes` attributes). */
  opset: number;
  doc?: string;
  metadata?: Record<string, string>;
}

/** Serialises a model: IR version 8 (the one that goes with opsets 17–18). */
export function encodeModel(g: Graph, info: ModelInfo): Uint8Array {
  const graph = new Msg();
  g.nodes.forEach((n, i) => graph.msg(1, nodeMsg(n, i)));
  graph.str(2, g.name);
  for (const t of g.initializers) graph.msg(5, tensorMsg(t));
  if (g.doc) graph.str(10, g.doc);
  for (const v of g.inputs) graph.msg(11, valueInfoMsg(v));
  for (const v of g.outputs) graph.msg(12, valueInfoMsg(v));
  const model = new Msg()
    .int(1, 8)
    .str(2, info.producer)
    .str(3, info.producerVersion)
    .msg(7, graph)
    .msg(8, new Msg().str(1, '').int(2, info.opset));
  if (info.doc) model.str(6, info.doc);
  for (const [k, v] of Object.entries(info.metadata ?? {})) model.msg(14, new Msg().str(1, k).str(2, v));
  return model.toBytes();
}
