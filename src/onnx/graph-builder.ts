/**
 * Builds an ONNX graph node by node with generated value names, plus the few composite pieces every tower
 * export shares (dense layer, L2 normalisation, "id inside the table" masks). Opset 17 semantics: ReduceSum
 * takes its axes as an input, ReduceL2 as an attribute; Softmax works on one axis.
 */
import { UserError } from '../util/errors.ts';
import { DT, encodeModel, type AttrValue, type DataType, type Graph, type ModelInfo, type Tensor, type ValueInfo } from './proto.ts';

export const OPSET = 17;

export class GraphBuilder {
  private readonly g: Graph;
  private n = 0;
  private readonly consts = new Map<string, string>();

  constructor(name: string) {
    this.g = { name, nodes: [], initializers: [], inputs: [], outputs: [] };
  }

  input(v: ValueInfo): string {
    this.g.inputs.push(v);
    return v.name;
  }

  /** Declares `value` as a graph output named `v.name` (through Identity, so any value can be an output). */
  output(value: string, v: ValueInfo): void {
    this.g.nodes.push({ op: 'Identity', inputs: [value], outputs: [v.name] });
    this.g.outputs.push(v);
  }

  tensor(name: string, type: DataType, dims: number[], data: Tensor['data']): string {
    this.g.initializers.push({ name, type, dims, data });
    return name;
  }

  f32(name: string, data: Float32Array, dims: number[]): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`onnx tensor ${name}: ${data.length} values for shape [${dims}]`);
    return this.tensor(name, DT.FLOAT, dims, data);
  }

  /** A shared int64 constant (scalar when dims = []). */
  i64(values: number[], dims: number[] = [values.length]): string {
    return this.constant(DT.INT64, values, dims, () => BigInt64Array.from(values, (v) => BigInt(v)));
  }

  /** A shared float32 constant (scalar when dims = []). */
  scalarF32(v: number): string {
    return this.constant(DT.FLOAT, [v], [], () => Float32Array.of(v));
  }

  private constant(type: DataType, values: number[], dims: number[], make: () => Tensor['data']): string {
    const key = `${type}:${dims.join('x')}:${values.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_${this.consts.size}`;
      this.consts.set(key, name);
      this.tensor(name, type, dims, make());
    }
    return name;
  }

  /** Adds a node; returns its (single) output's generated name. */
  op(op: string, inputs: string[], attrs?: Record<string, AttrValue>): string {
    const out = `${op.toLowerCase()}_${this.n++}`;
    this.g.nodes.push({ op, inputs, outputs: [out], attrs });
    return out;
  }

  /** y = x·W + b over the last axis (x …×inDim; W stored inDim×outDim, row-major, as DenseLayer keeps it). */
  linear(x: string, name: string, w: Float32Array, b: Float32Array, inDim: number, outDim: number, relu = false): string {
    const y = this.op('Add', [this.op('MatMul', [x, this.f32(`${name}.w`, w, [inDim, outDim])]), this.f32(`${name}.b`, b, [outDim])]);
    return relu ? this.op('Relu', [y]) : y;
  }

  /** Rows divided by max(‖row‖₂, 1e-12) (the backend's l2normForward; an all-zero row stays zero). */
  l2norm(x: string): string {
    const n = this.op('ReduceL2', [x], { axes: [-1], keepdims: 1 });
    return this.op('Div', [x, this.op('Max', [n, this.scalarF32(1e-12)])]);
  }

  /** Boolean mask: 0 ≤ ids < hi. */
  inRange(ids: string, hi: number): string {
    return this.op('And', [this.op('GreaterOrEqual', [ids, this.i64([0], [])]), this.op('Less', [ids, this.i64([hi], [])])]);
  }

  /** ids where `mask`, else 0: a safe Gather index (the row it fetches is then ignored or replaced). */
  safeIndex(ids: string, mask: string): string {
    return this.op('Where', [mask, ids, this.i64([0], [])]);
  }

  encode(info: Omit<ModelInfo, 'opset'>): Uint8Array {
    // A protobuf message is limited to 2 GiB; ONNX's external-data layout for larger models is not written here.
    const bytes = this.g.initializers.reduce((s, t) => s + t.data.byteLength, 0);
    if (bytes > 2 ** 31 - 2 ** 24) throw new UserError(`onnx: the ${this.g.name} weights take ${(bytes / 2 ** 30).toFixed(2)} GiB, over ONNX's 2 GiB single-file limit (external data is not supported)`);
    return encodeModel(this.g, { ...info, opset: OPSET });
  }
}
