/**
 * The ONNX graph under construction, in the NCHW domain: unique names, initializers, nodes, and the
 * NHWC ↔ NCHW transposes at both ends. A conv is kept "pending" (weights still editable) until a
 * real consumer needs its tensor, so per-channel scale/shift after it can be folded in (fold.ts).
 */
import { encodeModel, floatTensor, int64Tensor, type Attribute, type NodeProto, type TensorProto } from '../proto.js';
import { CONVERTER_VERSION, ONNX_INPUT, ONNX_OUTPUT, type ConvertResult } from './common.js';

export type Pad2 = { kind: 'valid' } | { kind: 'same' } | { kind: 'explicit'; pads: [number, number, number, number] };

/** A conv whose weights can still absorb per-channel scale/shift before it is emitted. */
export interface PendingConv {
  w: Float32Array; // OIHW
  dims: [number, number, number, number];
  bias: Float32Array | null;
  group: number;
  strides: [number, number];
  dilations: [number, number];
  pad: Pad2;
  input: string;
  base: string;
  foldable: boolean;
}

/** A value in the ONNX graph; NCHW when rank 4. `pending` values are emitted on first real use. */
export interface Val { name?: string; pending?: PendingConv; rank: number; channels?: number }

export class OnnxBuilder {
  readonly nodes: NodeProto[] = [];
  readonly inits: TensorProto[] = [];
  private used = new Set<string>();
  private scalars = new Map<number, string>();

  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  init(base: string, dims: readonly number[], data: ArrayLike<number>): string {
    const name = this.fresh(base);
    this.inits.push(floatTensor(name, dims, data));
    return name;
  }

  initInt64(base: string, data: readonly number[]): string {
    const name = this.fresh(base);
    this.inits.push(int64Tensor(name, [data.length], data));
    return name;
  }

  /** One shared initializer per scalar value (Clip bounds, averaging factors). */
  scalar(v: number): string {
    let name = this.scalars.get(v);
    if (!name) {
      name = this.init(`const_${v}`, [], [v]);
      this.scalars.set(v, name);
    }
    return name;
  }

  node(opType: string, inputs: string[], base: string, attributes: Attribute[] = []): string {
    const out = this.fresh(base);
    this.nodes.push({ opType, inputs, outputs: [out], name: out, attributes });
    return out;
  }

  /** Emits a pending conv (once) and returns the tensor name. */
  tensor(v: Val): string {
    if (v.name) return v.name;
    const p = v.pending!;
    const inputs = [p.input, this.init(`${p.base}/W`, p.dims, p.w)];
    if (p.bias) inputs.push(this.init(`${p.base}/B`, [p.bias.length], p.bias));
    const [, , kh, kw] = p.dims;
    const attrs: Attribute[] = [
      { name: 'kernel_shape', type: 'ints', ints: [kh, kw] },
      { name: 'strides', type: 'ints', ints: p.strides },
      { name: 'dilations', type: 'ints', ints: p.dilations },
      { name: 'group', type: 'int', i: p.group },
      ...padAttrs(p.pad, [kh, kw], p.strides, p.dilations),
    ];
    v.name = this.node('Conv', inputs, p.base, attrs);
    v.pending = undefined;
    return v.name;
  }
}

/**
 * TF 'SAME' puts the odd pixel at the bottom/right, i.e. ONNX SAME_UPPER. With stride 1 the padding
 * does not depend on the input size, so it is written as explicit pads (static); with larger strides
 * it does, and the input is dynamic, so auto_pad SAME_UPPER is used.
 */
export function padAttrs(pad: Pad2, k: [number, number], s: readonly number[], d: readonly number[] = [1, 1]): Attribute[] {
  if (pad.kind === 'valid') return [];
  if (pad.kind === 'explicit') return [{ name: 'pads', type: 'ints', ints: [pad.pads[0], pad.pads[1], pad.pads[2], pad.pads[3]] }];
  if (s[0] === 1 && s[1] === 1) {
    const th = (k[0] - 1) * d[0];
    const tw = (k[1] - 1) * d[1];
    const t = Math.floor(th / 2);
    const l = Math.floor(tw / 2);
    return [{ name: 'pads', type: 'ints', ints: [t, l, th - t, tw - l] }];
  }
  return [{ name: 'auto_pad', type: 'string', s: 'SAME_UPPER' }];
}

/** Input NHWC → NCHW, the start of every converted graph. */
export function startGraph(b: OnnxBuilder, channels: number): Val {
  // Reserve the graph's own input/output names so no node takes them.
  b.fresh(ONNX_INPUT);
  b.fresh(ONNX_OUTPUT);
  const name = b.node('Transpose', [ONNX_INPUT], 'input_nchw', [{ name: 'perm', type: 'ints', ints: [0, 3, 1, 2] }]);
  return { name, rank: 4, channels };
}

/** Back to NHWC (rank 4) so the feature map reads as tfjs's, then the encoded model. */
export function finishGraph(b: OnnxBuilder, input: string, inputChannels: number, out: Val): ConvertResult {
  const t = b.tensor(out);
  if (out.rank === 4) b.nodes.push({ opType: 'Transpose', inputs: [t], outputs: [ONNX_OUTPUT], name: ONNX_OUTPUT, attributes: [{ name: 'perm', type: 'ints', ints: [0, 2, 3, 1] }] });
  else b.nodes.push({ opType: 'Identity', inputs: [t], outputs: [ONNX_OUTPUT], name: ONNX_OUTPUT });
  const onnx = encodeModel({
    producerVersion: String(CONVERTER_VERSION),
    graph: {
      name: 'spp-extract-backbone',
      nodes: b.nodes,
      initializers: b.inits,
      inputs: [{ name: input, elemType: 1, shape: ['N', 'H', 'W', inputChannels] }],
      outputs: [{ name: ONNX_OUTPUT, elemType: 1 }],
    },
  });
  return { onnx, inputName: input, outputName: ONNX_OUTPUT, channels: out.channels };
}

/**
 * Concat of values along a TF (NHWC) axis: rank-4 axes are remapped to NCHW; channels add up only
 * when joining along channels with every count known.
 */
export function concat(b: OnnxBuilder, xs: Val[], tfAxis: number, name: string): Val {
  const rank = xs[0].rank;
  const a = tfAxis < 0 ? tfAxis + rank : tfAxis;
  const axis = rank === 4 ? [0, 2, 3, 1][a] : a;
  const channels = axis === 1 && xs.every((v) => v.channels) ? xs.reduce((s, v) => s + v.channels!, 0) : xs[0].channels;
  return { name: b.node('Concat', xs.map((v) => b.tensor(v)), name, [{ name: 'axis', type: 'int', i: axis }]), rank, channels };
}
