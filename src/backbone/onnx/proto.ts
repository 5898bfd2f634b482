/**
 * A minimal protobuf *writer* for the subset of onnx.proto this project emits (no dependency).
 *
 * Field numbers are those of onnx/onnx.proto (proto2):
 *   ModelProto       ir_version=1 producer_name=2 producer_version=3 graph=7 opset_import=8
 *   OperatorSetId    domain=1 version=2
 *   GraphProto       node=1 name=2 initializer=5 input=11 output=12
 *   NodeProto        input=1 output=2 name=3 op_type=4 attribute=5 domain=7
 *   AttributeProto   name=1 f=2 i=3 s=4 floats=7 ints=8 type=20
 *   TensorProto      dims=1 data_type=2 name=8 raw_data=9
 *   ValueInfoProto   name=1 type=2
 *   TypeProto        tensor_type=1;  TypeProto.Tensor elem_type=1 shape=2
 *   TensorShapeProto dim=1;          Dimension dim_value=1 dim_param=2
 * Repeated scalars are written unpacked (the proto2 default); readers accept both forms.
 */

export const DataType = { FLOAT: 1, INT64: 7, DOUBLE: 11 } as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

export type Attribute =
  | { name: string; type: 'int'; i: number }
  | { name: string; type: 'float'; f: number }
  | { name: string; type: 'string'; s: string }
  | { name: string; type: 'ints'; ints: readonly number[] }
  | { name: string; type: 'floats'; floats: readonly number[] };

export interface TensorProto {
  name: string;
  dataType: DataType;
  dims: readonly number[];
  /** Little-endian element bytes. */
  rawData: Uint8Array;
}

export interface NodeProto {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  attributes?: readonly Attribute[];
  domain?: string;
}

/** A tensor-typed graph input/output; string dims are symbolic (dim_param), numbers fixed (dim_value). */
export interface ValueInfoProto {
  name: string;
  elemType: DataType;
  shape?: readonly (number | string)[];
}

export interface GraphProto {
  name: string;
  nodes: readonly NodeProto[];
  initializers: readonly TensorProto[];
  inputs: readonly ValueInfoProto[];
  outputs: readonly ValueInfoProto[];
}

export interface ModelProto {
  graph: GraphProto;
  irVersion?: number;
  opsetVersion?: number;
  producerName?: string;
  producerVersion?: string;
}

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

/** Growable byte buffer with the protobuf primitives. */
class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(value: number | bigint): this {
    // int64 fields: negatives are 10-byte two's complement, so go through BigInt.
    let v = BigInt.asUintN(64, BigInt(value));
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, value: number): this {
    if (!Number.isInteger(value)) throw new Error(`protobuf: int field ${field} got non-integer ${value}`);
    return this.tag(field, WIRE_VARINT).varint(value);
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.len, value, true);
    this.len += 4;
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LEN).varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, write: (w: Writer) => void): this {
    const inner = new Writer();
    write(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function writeAttribute(w: Writer, a: Attribute): void {
  w.string(1, a.name);
  switch (a.type) {
    case 'float':
      w.float(2, a.f).int(20, AttributeType.FLOAT);
      break;
    case 'int':
      w.int(3, a.i).int(20, AttributeType.INT);
      break;
    case 'string':
      w.string(4, a.s).int(20, AttributeType.STRING);
      break;
    case 'floats':
      for (const f of a.floats) w.float(7, f);
      w.int(20, AttributeType.FLOATS);
      break;
    case 'ints':
      for (const i of a.ints) w.int(8, i);
      w.int(20, AttributeType.INTS);
      break;
  }
}

function writeTensor(w: Writer, t: TensorProto): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.rawData);
}

function writeNode(w: Writer, n: NodeProto): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const a of n.attributes ?? []) w.message(5, (m) => writeAttribute(m, a));
  if (n.domain) w.string(7, n.domain);
}

function writeValueInfo(w: Writer, v: ValueInfoProto): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.elemType);
      if (v.shape) {
        const shape = v.shape;
        tensor.message(2, (s) => {
          for (const d of shape) {
            s.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
          }
        });
      }
    }),
  );
}

function writeGraph(w: Writer, g: GraphProto): void {
  for (const n of g.nodes) w.message(1, (m) => writeNode(m, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (m) => writeTensor(m, t));
  for (const v of g.inputs) w.message(11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) w.message(12, (m) => writeValueInfo(m, v));
}

/** Serialises a ModelProto (ir_version 8, default-domain opset 17 unless told otherwise). */
export function encodeModel(model: ModelProto): Uint8Array {
  const w = new Writer();
  w.int(1, model.irVersion ?? 8);
  w.string(2, model.producerName ?? 'spp-extract');
  if (model.producerVersion) w.string(3, model.producerVersion);
  w.message(7, (g) => writeGraph(g, model.graph));
  w.message(8, (op) => op.string(1, '').int(2, model.opsetVersion ?? 17));
  return w.finish();
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function floatTensor(name: string, dims: readonly number[], data: ArrayLike<number>): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`tensor '${name}': ${data.length} values for dims [${dims.join(',')}]`);
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  let raw: Uint8Array;
  if (LITTLE_ENDIAN) {
    raw = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  } else {
    raw = new Uint8Array(f.length * 4);
    const view = new DataView(raw.buffer);
    f.forEach((v, i) => view.setFloat32(i * 4, v, true));
  }
  return { name, dataType: DataType.FLOAT, dims, rawData: raw };
}

export function int64Tensor(name: string, dims: readonly number[], data: readonly number[]): TensorProto {
  const raw = new Uint8Array(data.length * 8);
  const view = new DataView(raw.buffer);
  data.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return { name, dataType: DataType.INT64, dims, rawData: raw };
}
