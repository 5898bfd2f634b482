/**
 * TF.js model (graph or layers) → ONNX graph from the model input up to one layer/node.
 *
 * The ONNX graph takes NHWC float32 [N,H,W,C] (dynamic N/H/W) exactly like the tfjs path, transposes
 * to NCHW once, runs everything in NCHW (what ONNX Runtime's CPU kernels are fast at) and transposes
 * back to NHWC at the end, so a feature map reads the same as tfjs's.
 *
 * Conv → (Mul / Add / BiasAdd by a per-channel constant, BatchNormalization) chains are folded into
 * the conv's weights and bias when the conv output has no other consumer.
 */
import type { io } from '@tensorflow/tfjs';
import type { LoadedArtifacts } from '../model/artifacts.js';
import { encodeModel, floatTensor, int64Tensor, type Attribute, type NodeProto, type TensorProto } from './proto.js';

/** Bump whenever the emitted graph changes: it is part of the .onnx cache key. */
export const CONVERTER_VERSION = 1;
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'features';

export class UnsupportedOpError extends Error {
  constructor(
    readonly kind: 'layer' | 'node',
    readonly layerName: string,
    readonly op: string,
    detail?: string,
  ) {
    super(
      `cannot convert ${kind} '${layerName}' (${kind === 'layer' ? 'class' : 'op'} ${op}) to ONNX` +
        (detail ? `: ${detail}` : '') +
        '; use the tfjs backend for this model/layer',
    );
    this.name = 'UnsupportedOpError';
  }
}

// ---------------------------------------------------------------------------------------------
// Weights

interface Weight { readonly shape: number[]; readonly data: Float32Array | Int32Array }

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Decodes tfjs weight shards (float32/int32, and the uint8/uint16/float16 quantized forms) by name. */
export function decodeWeights(artifacts: io.ModelArtifacts): Map<string, Weight> {
  const raw = artifacts.weightData;
  const parts = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    bytes.set(new Uint8Array(p), at);
    at += p.byteLength;
  }
  const view = new DataView(bytes.buffer);
  const out = new Map<string, Weight>();
  let offset = 0;
  for (const spec of artifacts.weightSpecs ?? []) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const q = spec.quantization;
    if (spec.dtype === 'string') {
      // Strings: per element a uint32 length then the bytes; skipped, only their size matters.
      for (let i = 0; i < n; i++) offset += 4 + view.getUint32(offset, true);
      continue;
    }
    if (q) {
      const size = q.dtype === 'uint8' ? 1 : 2;
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const p = offset + i * size;
        if (q.dtype === 'float16') data[i] = halfToFloat(view.getUint16(p, true));
        else data[i] = (q.dtype === 'uint8' ? bytes[p] : view.getUint16(p, true)) * (q.scale ?? 1) + (q.min ?? 0);
      }
      offset += n * size;
      out.set(spec.name, { shape: spec.shape, data: spec.dtype === 'int32' ? Int32Array.from(data, Math.round) : data });
      continue;
    }
    const size = spec.dtype === 'bool' ? 1 : spec.dtype === 'complex64' ? 8 : 4;
    if (spec.dtype === 'float32') out.set(spec.name, { shape: spec.shape, data: new Float32Array(bytes.buffer.slice(offset, offset + n * 4)) });
    else if (spec.dtype === 'int32') out.set(spec.name, { shape: spec.shape, data: new Int32Array(bytes.buffer.slice(offset, offset + n * 4)) });
    else if (spec.dtype === 'bool') out.set(spec.name, { shape: spec.shape, data: Int32Array.from(bytes.subarray(offset, offset + n)) });
    offset += n * size;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ONNX graph builder (NCHW domain)

type Pad2 = { kind: 'valid' } | { kind: 'same' } | { kind: 'explicit'; pads: [number, number, number, number] };

/** A conv whose weights can still absorb per-channel scale/shift before it is emitted. */
interface PendingConv {
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
interface Val { name?: string; pending?: PendingConv; rank: number; channels?: number }

class OnnxBuilder {
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
function padAttrs(pad: Pad2, k: [number, number], s: readonly number[], d: readonly number[] = [1, 1]): Attribute[] {
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

/** TF HWIO → ONNX OIHW. */
function hwioToOihw(w: Weight): { w: Float32Array; dims: [number, number, number, number] } {
  const [kh, kw, ci, co] = w.shape;
  const out = new Float32Array(w.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) out[((o * ci + i) * kh + y) * kw + x] = w.data[((y * kw + x) * ci + i) * co + o];
  return { w: out, dims: [co, ci, kh, kw] };
}

/** TF depthwise [kh,kw,C,M] → ONNX grouped conv weight [C*M,1,kh,kw] (output channel c*M+m), group C. */
function depthwiseToOihw(w: Weight): { w: Float32Array; dims: [number, number, number, number]; group: number } {
  const [kh, kw, c, m] = w.shape;
  const out = new Float32Array(w.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let ci = 0; ci < c; ci++)
        for (let mi = 0; mi < m; mi++) out[((ci * m + mi) * kh + y) * kw + x] = w.data[((y * kw + x) * c + ci) * m + mi];
  return { w: out, dims: [c * m, 1, kh, kw], group: c };
}

/** Per-output-channel affine y = conv*scale + shift folded into a pending conv (new object, inputs untouched). */
function foldAffine(p: PendingConv, scale: ArrayLike<number> | null, shift: ArrayLike<number> | null, foldable: boolean): PendingConv {
  const [o] = p.dims;
  const per = p.w.length / o;
  const w = new Float32Array(p.w);
  const bias = new Float32Array(o);
  for (let c = 0; c < o; c++) {
    const s = scale ? scale[scale.length === 1 ? 0 : c] : 1;
    const b = (p.bias ? p.bias[c] : 0) * s + (shift ? shift[shift.length === 1 ? 0 : c] : 0);
    bias[c] = b;
    if (s !== 1) for (let j = c * per; j < (c + 1) * per; j++) w[j] = w[j] * s;
  }
  return { ...p, w, bias, foldable };
}

function bnAffine(gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null, mean: ArrayLike<number>, variance: ArrayLike<number>, eps: number) {
  const n = mean.length;
  const scale = new Float64Array(n);
  const shift = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    scale[c] = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + eps);
    shift[c] = (beta ? beta[c] : 0) - mean[c] * scale[c];
  }
  return { scale, shift };
}

type Activation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'tanh' | 'elu' | 'selu' | 'softplus' | 'swish' | 'hard_sigmoid' | 'softmax' | { leaky: number };

function applyActivation(b: OnnxBuilder, x: Val, act: Activation, base: string): Val {
  if (act === 'linear') return x;
  const inp = b.tensor(x);
  const out = (name: string) => ({ name, rank: x.rank, channels: x.channels });
  if (typeof act === 'object') return out(b.node('LeakyRelu', [inp], base, [{ name: 'alpha', type: 'float', f: act.leaky }]));
  switch (act) {
    case 'relu':
      return out(b.node('Relu', [inp], base));
    case 'relu6':
      // Opset >= 11: Clip takes min/max as inputs.
      return out(b.node('Clip', [inp, b.scalar(0), b.scalar(6)], base));
    case 'sigmoid':
      return out(b.node('Sigmoid', [inp], base));
    case 'tanh':
      return out(b.node('Tanh', [inp], base));
    case 'elu':
      return out(b.node('Elu', [inp], base));
    case 'selu':
      return out(b.node('Selu', [inp], base));
    case 'softplus':
      return out(b.node('Softplus', [inp], base));
    case 'hard_sigmoid':
      return out(b.node('HardSigmoid', [inp], base, [{ name: 'alpha', type: 'float', f: 0.2 }, { name: 'beta', type: 'float', f: 0.5 }]));
    case 'swish':
      return out(b.node('Mul', [inp, b.node('Sigmoid', [inp], `${base}/sigmoid`)], base));
    case 'softmax':
      // Channels are axis 1 in NCHW / NC.
      return out(b.node('Softmax', [inp], base, [{ name: 'axis', type: 'int', i: 1 }]));
  }
}

const KERAS_ACTIVATIONS: Record<string, Activation> = {
  linear: 'linear', relu: 'relu', relu6: 'relu6', sigmoid: 'sigmoid', tanh: 'tanh', elu: 'elu', selu: 'selu',
  softplus: 'softplus', swish: 'swish', silu: 'swish', hard_sigmoid: 'hard_sigmoid', softmax: 'softmax',
};

function finish(b: OnnxBuilder, input: string, inputChannels: number, out: Val): { onnx: Uint8Array; inputName: string; outputName: string; channels?: number } {
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

/** Input NHWC → NCHW, the start of every converted graph. */
function startGraph(b: OnnxBuilder, channels: number): Val {
  b.fresh(ONNX_INPUT);
  b.fresh(ONNX_OUTPUT);
  const name = b.node('Transpose', [ONNX_INPUT], 'input_nchw', [{ name: 'perm', type: 'ints', ints: [0, 3, 1, 2] }]);
  return { name, rank: 4, channels };
}

// ---------------------------------------------------------------------------------------------
// Graph models (TF ops)

type TfAttr = { s?: string; i?: string | number; f?: number; b?: boolean; list?: { i?: (string | number)[]; s?: string[]; f?: number[] } };
type TfNode = { name: string; op: string; input?: string[]; attr?: Record<string, TfAttr> };

const clean = (name: string) => name.replace(/^\^/, '').replace(/:\d+$/, '');
const b64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

function convertGraph(loaded: LoadedArtifacts, target: string) {
  const nodes = ((loaded.artifacts.modelTopology as { node?: TfNode[] }).node ?? []) as TfNode[];
  const byName = new Map(nodes.map((n) => [n.name, n]));
  if (!byName.has(target)) throw new Error(`--layer: no node '${target}' in this graph model`);
  const weights = decodeWeights(loaded.artifacts);
  const consumers = new Map<string, number>();
  for (const n of nodes) for (const i of n.input ?? []) if (!i.startsWith('^')) consumers.set(clean(i), (consumers.get(clean(i)) ?? 0) + 1);
  const foldable = (name: string) => name !== target && consumers.get(name) === 1;

  const b = new OnnxBuilder();
  const placeholders = nodes.filter((n) => n.op === 'Placeholder');
  const placeholder = placeholders[0];
  const inDims = placeholder?.attr?.shape as unknown as { shape?: { dim?: { size?: string }[] } } | undefined;
  const inC = Number(inDims?.shape?.dim?.[3]?.size ?? 3);
  const input = startGraph(b, inC > 0 ? inC : 3);
  const memo = new Map<string, Val>();

  const unsupported = (n: TfNode, detail?: string) => new UnsupportedOpError('node', n.name, n.op, detail);

  /** A Const (possibly behind Identity) as a weight, else undefined. */
  const constOf = (ref: string): Weight | undefined => {
    const n = byName.get(clean(ref));
    if (!n) return undefined;
    if (n.op === 'Identity' && n.input?.[0]) return constOf(n.input[0]);
    if (n.op !== 'Const') return undefined;
    const w = weights.get(n.name);
    if (!w) throw new Error(`graph model: no weights for Const '${n.name}'`);
    return w;
  };
  const needConst = (n: TfNode, ref: string, what: string): Weight => {
    const w = constOf(ref);
    if (!w) throw unsupported(n, `${what} is not a constant`);
    return w;
  };
  const ints = (n: TfNode, key: string, dflt: number[]) => (n.attr?.[key]?.list?.i ?? dflt).map(Number);
  const str = (n: TfNode, key: string) => b64(n.attr?.[key]?.s);

  const checkFormat = (n: TfNode) => {
    const fmt = str(n, 'data_format');
    if (fmt && fmt !== 'NHWC') throw unsupported(n, `data_format ${fmt}`);
  };
  const padOf = (n: TfNode): Pad2 => {
    const p = str(n, 'padding');
    if (p === 'SAME') return { kind: 'same' };
    if (p === 'VALID') return { kind: 'valid' };
    if (p === 'EXPLICIT') {
      const e = ints(n, 'explicit_paddings', []); // NHWC pairs
      return { kind: 'explicit', pads: [e[2], e[4], e[3], e[5]] };
    }
    throw unsupported(n, `padding ${p}`);
  };

  /** A constant made broadcastable against an NCHW (rank 4) or NC (rank 2) value; undefined if its shape cannot be mapped. */
  const layoutConst = (w: Weight, x: Val, base: string): string | undefined => {
    const rank = x.rank;
    const data = Float32Array.from(w.data);
    const n = data.length;
    if (n === 1) return b.init(base, [], data);
    const s = w.shape;
    if (n === x.channels && (s.length === 1 || s.slice(0, -1).every((d) => d === 1))) {
      return rank === 4 ? b.init(base, [n, 1, 1], data) : b.init(base, [n], data);
    }
    if (s.length === 4 && rank === 4) {
      const [n0, h, ww, c] = s;
      const out = new Float32Array(n);
      for (let a = 0; a < n0; a++) for (let y = 0; y < h; y++) for (let x = 0; x < ww; x++) for (let k = 0; k < c; k++) out[((a * c + k) * h + y) * ww + x] = data[((a * h + y) * ww + x) * c + k];
      return b.init(base, [n0, c, h, ww], out);
    }
    return undefined;
  };
  /** Per-channel (or scalar) constant values, for folding. */
  const perChannel = (w: Weight | undefined, channels: number): Float32Array | undefined => {
    if (!w) return undefined;
    const ok = w.data.length === 1 || (w.data.length === channels && (w.shape.length === 1 || w.shape.slice(0, -1).every((d) => d === 1)));
    return ok ? Float32Array.from(w.data) : undefined;
  };

  const pendingOf = (v: Val): PendingConv | undefined => (v.pending?.foldable ? v.pending : undefined);

  const convNode = (n: TfNode, depthwise: boolean): Val => {
    checkFormat(n);
    const x = value(n.input![0]);
    const f = needConst(n, n.input![1], 'filter');
    const s = ints(n, 'strides', [1, 1, 1, 1]);
    const d = ints(n, 'dilations', [1, 1, 1, 1]);
    const k = depthwise ? depthwiseToOihw(f) : { ...hwioToOihw(f), group: 1 };
    let group = k.group;
    if (!depthwise && f.shape[2] !== x.channels && x.channels && x.channels % f.shape[2] === 0) group = x.channels / f.shape[2];
    const pending: PendingConv = {
      w: k.w, dims: k.dims, bias: null, group, strides: [s[1], s[2]], dilations: [d[1], d[2]], pad: padOf(n),
      input: b.tensor(x), base: n.name, foldable: foldable(n.name),
    };
    let v: Val = { pending, rank: 4, channels: k.dims[0] };
    if (n.op.includes('Fused')) {
      // As tfjs: op names compared case-insensitively.
      const ops = (n.attr?.fused_ops?.list?.s ?? []).map((e) => b64(e)!.toLowerCase());
      const numArgs = Number(n.attr?.num_args?.i ?? 0);
      const args = n.input!.slice(2, 2 + numArgs);
      let i = 0;
      for (const op of ops) {
        if (op === 'biasadd') {
          const bias = perChannel(needConst(n, args[i++], 'bias'), k.dims[0]);
          if (!bias) throw unsupported(n, 'bias shape');
          v = { ...v, pending: foldAffine(v.pending!, null, bias, true) };
        } else if (op === 'relu') v = applyActivation(b, v, 'relu', `${n.name}/relu`);
        else if (op === 'relu6') v = applyActivation(b, v, 'relu6', `${n.name}/relu6`);
        else if (op === 'elu') v = applyActivation(b, v, 'elu', `${n.name}/elu`);
        else if (op === 'sigmoid') v = applyActivation(b, v, 'sigmoid', `${n.name}/sigmoid`);
        else if (op === 'tanh') v = applyActivation(b, v, 'tanh', `${n.name}/tanh`);
        else if (op === 'leakyrelu') v = applyActivation(b, v, { leaky: n.attr?.leakyrelu_alpha?.f ?? 0.2 }, `${n.name}/leaky`);
        else if (op === 'prelu') {
          const alpha = layoutConst(needConst(n, args[i++], 'prelu alpha'), v, `${n.name}/alpha`);
          if (!alpha) throw unsupported(n, 'prelu alpha shape');
          v = { name: b.node('PRelu', [b.tensor(v), alpha], `${n.name}/prelu`), rank: 4, channels: v.channels };
        } else throw unsupported(n, `fused op ${op}`);
      }
      if (v.pending) v.pending.foldable = foldable(n.name);
    }
    return v;
  };

  const poolNode = (n: TfNode, op: 'MaxPool' | 'AveragePool'): Val => {
    checkFormat(n);
    const x = value(n.input![0]);
    const k = ints(n, 'ksize', [1, 1, 1, 1]);
    const s = ints(n, 'strides', [1, 1, 1, 1]);
    if (k[0] !== 1 || k[3] !== 1 || s[0] !== 1 || s[3] !== 1) throw unsupported(n, 'pooling over batch/channels');
    const attrs: Attribute[] = [
      { name: 'kernel_shape', type: 'ints', ints: [k[1], k[2]] },
      { name: 'strides', type: 'ints', ints: [s[1], s[2]] },
      ...padAttrs(padOf(n), [k[1], k[2]], [s[1], s[2]]),
    ];
    // TF's AvgPool averages over the valid pixels only: count_include_pad 0 (the ONNX default).
    return { name: b.node(op, [b.tensor(x)], n.name, attrs), rank: 4, channels: x.channels };
  };

  const binary = (n: TfNode, onnxOp: 'Add' | 'Sub' | 'Mul'): Val => {
    const [ra, rb] = [n.input![0], n.input![1]];
    const [ca, cb] = [constOf(ra), constOf(rb)];
    if (ca && cb) throw unsupported(n, 'both operands constant');
    const x = value(ca ? rb : ra);
    const c = ca ?? cb;
    if (!c) {
      const y = value(rb);
      return { name: b.node(onnxOp, [b.tensor(x), b.tensor(y)], n.name), rank: Math.max(x.rank, y.rank), channels: x.channels ?? y.channels };
    }
    const p = pendingOf(x);
    const pc = p && x.channels ? perChannel(c, x.channels) : undefined;
    if (p && pc) {
      if (onnxOp === 'Mul') return { ...x, pending: foldAffine(p, pc, null, foldable(n.name)) };
      if (onnxOp === 'Add') return { ...x, pending: foldAffine(p, null, pc, foldable(n.name)) };
      if (!ca) return { ...x, pending: foldAffine(p, null, pc.map((v) => -v), foldable(n.name)) };
    }
    const cname = layoutConst(c, x, `${n.name}/const`);
    if (!cname) throw unsupported(n, `constant of shape [${c.shape.join(',')}]`);
    const inputs = ca ? [cname, b.tensor(x)] : [b.tensor(x), cname];
    return { name: b.node(onnxOp, inputs, n.name), rank: x.rank, channels: x.channels };
  };

  const value = (ref: string): Val => {
    const name = clean(ref);
    const hit = memo.get(name);
    if (hit) return hit;
    const n = byName.get(name);
    if (!n) throw new Error(`graph model: node input '${ref}' does not exist`);
    const v = convert(n);
    memo.set(name, v);
    return v;
  };

  const convert = (n: TfNode): Val => {
    const one = () => value(n.input![0]);
    const unary = (act: Activation) => applyActivation(b, one(), act, n.name);
    switch (n.op) {
      case 'Placeholder':
        if (n !== placeholder) throw unsupported(n, 'a second model input');
        return input;
      case 'Identity':
        return one();
      case 'Conv2D':
      case '_FusedConv2D':
      case 'FusedConv2D':
        return convNode(n, false);
      case 'DepthwiseConv2dNative':
      case 'FusedDepthwiseConv2dNative':
        return convNode(n, true);
      case 'BiasAdd':
        checkFormat(n);
        return binary(n, 'Add');
      case 'Add':
      case 'AddV2':
        return binary(n, 'Add');
      case 'Sub':
        return binary(n, 'Sub');
      case 'Mul':
        return binary(n, 'Mul');
      case 'Relu':
        return unary('relu');
      case 'Relu6':
        return unary('relu6');
      case 'Elu':
        return unary('elu');
      case 'Selu':
        return unary('selu');
      case 'Sigmoid':
        return unary('sigmoid');
      case 'Tanh':
        return unary('tanh');
      case 'LeakyRelu':
        return unary({ leaky: n.attr?.alpha?.f ?? 0.2 });
      case 'MaxPool':
        return poolNode(n, 'MaxPool');
      case 'AvgPool':
        return poolNode(n, 'AveragePool');
      case 'FusedBatchNorm':
      case 'FusedBatchNormV2':
      case 'FusedBatchNormV3': {
        checkFormat(n);
        const x = one();
        const [scale, offset, mean, variance] = n.input!.slice(1, 5).map((r, i) => needConst(n, r, ['scale', 'offset', 'mean', 'variance'][i]).data);
        const { scale: s, shift } = bnAffine(scale, offset, mean, variance, n.attr?.epsilon?.f ?? 1e-3);
        const p = pendingOf(x);
        if (p) return { ...x, pending: foldAffine(p, s, shift, foldable(n.name)) };
        const inputs = [b.tensor(x), b.init(`${n.name}/scale`, [s.length], s), b.init(`${n.name}/shift`, [s.length], shift)];
        const zeros = new Float32Array(s.length);
        inputs.push(b.init(`${n.name}/mean`, [s.length], zeros), b.init(`${n.name}/var`, [s.length], zeros.map(() => 1)));
        return { name: b.node('BatchNormalization', inputs, n.name, [{ name: 'epsilon', type: 'float', f: 0 }]), rank: x.rank, channels: x.channels };
      }
      case 'Mean':
      case 'Max': {
        const x = one();
        const axes = [...needConst(n, n.input![1], 'reduction axes').data].map((a) => (a < 0 ? a + x.rank : a));
        if (x.rank !== 4 || axes.length !== 2 || !axes.includes(1) || !axes.includes(2)) throw unsupported(n, `reduction over axes [${axes.join(',')}]`);
        const keep = n.attr?.keep_dims?.b ?? false;
        const op = n.op === 'Mean' ? 'ReduceMean' : 'ReduceMax';
        const attrs: Attribute[] = [{ name: 'axes', type: 'ints', ints: [2, 3] }, { name: 'keepdims', type: 'int', i: keep ? 1 : 0 }];
        return { name: b.node(op, [b.tensor(x)], n.name, attrs), rank: keep ? 4 : 2, channels: x.channels };
      }
      case 'Pad':
      case 'PadV2':
      case 'MirrorPad': {
        const x = one();
        const p = [...needConst(n, n.input![1], 'paddings').data]; // NHWC [[b,a] x 4]
        if (x.rank !== 4 || p.length !== 8) throw unsupported(n, 'paddings of rank != 4');
        const pads = b.initInt64(`${n.name}/pads`, [p[0], p[6], p[2], p[4], p[1], p[7], p[3], p[5]]);
        const inputs = [b.tensor(x), pads];
        let mode = 'constant';
        if (n.op === 'PadV2') {
          const cv = needConst(n, n.input![2], 'constant value');
          inputs.push(b.init(`${n.name}/value`, [], [cv.data[0]]));
        } else if (n.op === 'MirrorPad') {
          mode = str(n, 'mode') === 'REFLECT' ? 'reflect' : '';
          if (!mode) throw unsupported(n, `mode ${str(n, 'mode')}`);
        }
        return { name: b.node('Pad', inputs, n.name, [{ name: 'mode', type: 'string', s: mode }]), rank: 4, channels: x.channels };
      }
      case 'ConcatV2': {
        const refs = n.input!.filter((r) => !r.startsWith('^'));
        const axisRaw = Number(needConst(n, refs[refs.length - 1], 'axis').data[0]);
        const xs = refs.slice(0, -1).map((r) => value(r));
        const rank = xs[0].rank;
        const a = axisRaw < 0 ? axisRaw + rank : axisRaw;
        const axis = rank === 4 ? [0, 2, 3, 1][a] : a;
        const channels = axis === 1 && xs.every((v) => v.channels) ? xs.reduce((s, v) => s + v.channels!, 0) : xs[0].channels;
        return { name: b.node('Concat', xs.map((v) => b.tensor(v)), n.name, [{ name: 'axis', type: 'int', i: axis }]), rank, channels };
      }
      default:
        throw unsupported(n);
    }
  };

  const out = value(target);
  return finish(b, ONNX_INPUT, input.channels ?? 3, out);
}

// ---------------------------------------------------------------------------------------------
// Layers models (Keras configs)

interface Ref { layer: string; node: number; tensor: number }
export interface KerasLayer {
  readonly className: string;
  readonly name: string;
  readonly config: Record<string, any>;
  readonly inbound: Ref[][];
  /** Set for nested Sequential / Model / Functional layers. */
  readonly model?: KerasModel;
}
export interface KerasModel {
  readonly className: string;
  readonly name: string;
  readonly sequential: boolean;
  readonly layers: KerasLayer[];
  readonly inputs: Ref[];
  readonly outputs: Ref[];
}

const MODEL_CLASSES = new Set(['Sequential', 'Model', 'Functional']);

function parseRef(r: unknown): Ref | undefined {
  if (Array.isArray(r) && typeof r[0] === 'string') return { layer: r[0], node: Number(r[1] ?? 0), tensor: Number(r[2] ?? 0) };
  const h = (r as { config?: { keras_history?: unknown[] } } | null)?.config?.keras_history;
  if (Array.isArray(h)) return { layer: String(h[0]), node: Number(h[1] ?? 0), tensor: Number(h[2] ?? 0) };
  return undefined;
}

/** Every tensor reference in a Keras 2 (`[[name, node, tensor, kwargs], ...]`) or Keras 3 (`{args, kwargs}`) inbound node. */
function refsOf(node: unknown, out: Ref[] = []): Ref[] {
  const ref = parseRef(node);
  if (ref) out.push(ref);
  else if (Array.isArray(node)) for (const x of node) refsOf(x, out);
  else if (node && typeof node === 'object') for (const x of Object.values(node)) refsOf(x, out);
  return out;
}

function refList(v: unknown): Ref[] {
  if (Array.isArray(v) && typeof v[0] === 'string') return [parseRef(v)!];
  return Array.isArray(v) ? v.map((r) => parseRef(r)!).filter(Boolean) : [];
}

function parseModel(cfg: { class_name: string; config: any }): KerasModel {
  const c = cfg.config;
  const rawLayers: any[] = Array.isArray(c) ? c : (c?.layers ?? []);
  const sequential = cfg.class_name === 'Sequential';
  const layers: KerasLayer[] = rawLayers.map((l) => {
    const name: string = l.name ?? l.config?.name;
    const model = MODEL_CLASSES.has(l.class_name) ? parseModel(l) : undefined;
    return { className: l.class_name, name, config: l.config ?? {}, inbound: (l.inbound_nodes ?? []).map((n: unknown) => refsOf(n)), model };
  });
  return {
    className: cfg.class_name,
    name: Array.isArray(c) ? cfg.class_name : (c?.name ?? cfg.class_name),
    sequential,
    layers,
    inputs: sequential ? [] : refList(c?.input_layers),
    outputs: sequential ? [] : refList(c?.output_layers),
  };
}

export function parseLayersTopology(topology: unknown): KerasModel {
  const t = topology as { model_config?: { class_name: string; config: any }; class_name?: string; config?: any };
  const cfg = t.model_config ?? (t as { class_name: string; config: any });
  if (!cfg?.class_name) throw new Error('layers model: modelTopology has no model config');
  return parseModel(cfg);
}

/**
 * tfjs's `model.layers` order: Sequential keeps insertion order; a functional model sorts layers by
 * depth from the outputs (deepest = closest to the input first), ties by first visit from the
 * outputs (tfjs-layers Container constructor).
 */
function orderedLayers(m: KerasModel): KerasLayer[] {
  if (m.sequential) return m.layers;
  const byName = new Map(m.layers.map((l) => [l.name, l]));
  const layerIndex = new Map<string, number>();
  const finished = new Set<string>();
  const order: { layer: string; node: number }[] = [];
  const visit = (ref: Ref) => {
    const key = `${ref.layer}:${ref.node}`;
    if (finished.has(key)) return;
    if (!layerIndex.has(ref.layer)) layerIndex.set(ref.layer, layerIndex.size);
    for (const r of byName.get(ref.layer)?.inbound[ref.node] ?? []) visit(r);
    finished.add(key);
    order.push({ layer: ref.layer, node: ref.node });
  };
  for (const o of m.outputs) visit(o);
  const nodeDepth = new Map<string, number>();
  const layerDepth = new Map<string, number>();
  for (const nd of [...order].reverse()) {
    const key = `${nd.layer}:${nd.node}`;
    const depth = Math.max(nodeDepth.get(key) ?? 0, layerDepth.get(nd.layer) ?? 0);
    layerDepth.set(nd.layer, depth);
    nodeDepth.set(key, depth);
    for (const r of byName.get(nd.layer)?.inbound[nd.node] ?? []) {
      const k = `${r.layer}:${r.node}`;
      nodeDepth.set(k, Math.max(depth + 1, nodeDepth.get(k) ?? 0));
    }
  }
  return m.layers
    .filter((l) => layerDepth.has(l.name))
    .sort((a, b) => layerDepth.get(b.name)! - layerDepth.get(a.name)! || layerIndex.get(a.name)! - layerIndex.get(b.name)!);
}

export interface KerasLeaf { readonly layer: KerasLayer; readonly container: KerasModel; readonly shape: (number | null)[] | null }

type Shape = (number | null)[];
const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)]);

/** tfjs-layers convOutputLength for H and W (null stays null). */
function spatial(x: Shape, c: Record<string, any>, k: [number, number]): [number | null, number | null] {
  const s = pair(c.strides ?? 1);
  const d = pair(c.dilation_rate ?? 1);
  return [0, 1].map((i) => {
    const n = x[i + 1];
    if (n === null || n === undefined) return null;
    const len = c.padding === 'same' ? n : n - (k[i] + (k[i] - 1) * (d[i] - 1)) + 1;
    return Math.floor((len + s[i] - 1) / s[i]);
  }) as [number | null, number | null];
}

/** ZeroPadding2D's padding config as [[top, bottom], [left, right]]. */
function zeroPads(p: unknown = 1): [[number, number], [number, number]] {
  if (Array.isArray(p) && Array.isArray(p[0])) return [[Number(p[0][0]), Number(p[0][1])], [Number(p[1][0]), Number(p[1][1])]];
  const [h, w] = pair(p);
  return [[h, h], [w, w]];
}

/** Output shapes as tfjs sees them after the input is freed: spatial dims null, channels known. */
function inferShapes(m: KerasModel, inputs: (Shape | null)[], shapes: Map<KerasLayer, Shape | null>): (Shape | null)[] {
  const layerShape = (l: KerasLayer, ins: (Shape | null)[]): Shape | null => {
    const c = l.config;
    // A Sequential's first layer may carry the input shape itself.
    const x = ins[0] ?? ((c.batch_input_shape ?? c.batch_shape ?? null) as Shape | null);
    if (l.model) return inferShapes(l.model, ins, shapes)[0];
    switch (l.className) {
      case 'InputLayer': {
        const s = (c.batch_input_shape ?? c.batch_shape) as Shape | undefined;
        return s ? [...s] : x;
      }
      case 'Conv2D':
      case 'SeparableConv2D':
        return x ? [x[0], ...spatial(x, c, pair(c.kernel_size)), c.filters] : null;
      case 'DepthwiseConv2D':
        return x ? [x[0], ...spatial(x, c, pair(c.kernel_size)), x[3] === null ? null : x[3] * (c.depth_multiplier ?? 1)] : null;
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const k = pair(c.pool_size ?? 2);
        return x ? [x[0], ...spatial(x, { ...c, strides: c.strides ?? k }, k), x[3]] : null;
      }
      case 'ZeroPadding2D': {
        const [[t, b], [l, r]] = zeroPads(c.padding);
        return x ? [x[0], x[1] === null ? null : x[1] + t + b, x[2] === null ? null : x[2] + l + r, x[3]] : null;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        return x ? (c.keepdims ? [x[0], 1, 1, x[3]] : [x[0], x[3]]) : null;
      case 'Dense':
        return x ? [...x.slice(0, -1), c.units] : null;
      case 'Reshape':
        return x ? [x[0], ...(c.target_shape as number[])] : null;
      case 'Flatten':
        return x ? [x[0], x.slice(1).every((d) => d !== null) ? x.slice(1).reduce((a, b) => a! * b!, 1) : null] : null;
      case 'Concatenate': {
        if (ins.some((s) => !s)) return null;
        const axis = c.axis ?? -1;
        const r = x!.length;
        const a = axis < 0 ? axis + r : axis;
        const out = [...x!];
        out[a] = ins.every((s) => s![a] !== null) ? ins.reduce((sum, s) => sum + (s![a] as number), 0) : null;
        return out;
      }
      default:
        return x ? [...x] : null;
    }
  };
  if (m.sequential) {
    let cur = inputs[0] ?? null;
    for (const l of m.layers) {
      cur = layerShape(l, [cur]);
      shapes.set(l, cur);
    }
    return [cur];
  }
  const byName = new Map(m.layers.map((l) => [l.name, l]));
  const memo = new Map<string, Shape | null>();
  const get = (ref: Ref): Shape | null => {
    const key = `${ref.layer}:${ref.node}`;
    if (memo.has(key)) return memo.get(key)!;
    const l = byName.get(ref.layer);
    let s: Shape | null = null;
    if (l) {
      const at = m.inputs.findIndex((r) => r.layer === ref.layer);
      s = at >= 0 && l.className === 'InputLayer' ? layerShape(l, [inputs[at] ?? null]) : layerShape(l, (l.inbound[ref.node] ?? []).map(get));
      if (!shapes.has(l)) shapes.set(l, s);
    }
    memo.set(key, s);
    return s;
  };
  for (const l of m.layers) if (l.inbound.length > 0 || l.className === 'InputLayer') get({ layer: l.name, node: 0, tensor: 0 });
  return m.outputs.map(get);
}

/** Leaf layers in tfjs's order (nested models flattened), with output shapes; mirrors backbone.ts's leavesOf. */
export function kerasLeaves(root: KerasModel): { leaves: KerasLeaf[]; outputShape: Shape | null } {
  const shapes = new Map<KerasLayer, Shape | null>();
  const [outputShape] = inferShapes(root, [null], shapes);
  const leaves: KerasLeaf[] = [];
  const walk = (m: KerasModel) => {
    for (const l of orderedLayers(m)) {
      if (l.model) walk(l.model);
      else leaves.push({ layer: l, container: m, shape: shapes.get(l) ?? null });
    }
  };
  walk(root);
  return { leaves, outputShape: outputShape ?? null };
}

const GLOBAL_POOLS = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten']);

/**
 * backbone.ts's autoLayersLeaf on the JSON config instead of a loaded tfjs model (no tfjs needed to
 * pick the layer, which is part of the .onnx cache key): the input of the first global pool,
 * skipping a 1x1 conv classifier head right before it.
 */
export function autoKerasLeaf(root: KerasModel): KerasLeaf {
  const { leaves, outputShape } = kerasLeaves(root);
  const poolAt = leaves.findIndex((l) => GLOBAL_POOLS.has(l.layer.className));
  if (poolAt <= 0) {
    const last4d = [...leaves].reverse().find((l) => l.shape?.length === 4);
    if (!last4d) throw new Error('--layer: the model has no 4-D layer output; name one with --layer');
    return last4d;
  }
  const before = leaves[poolAt - 1];
  const classes = (outputShape ?? []).at(-1);
  const cfg = before.layer.config as { filters?: number; kernel_size?: number[] | number };
  const k = pair(cfg.kernel_size);
  const isClassMap = before.layer.className === 'Conv2D' && cfg.filters === classes && k[0] === 1 && k[1] === 1;
  return isClassMap && poolAt >= 2 ? leaves[poolAt - 2] : before;
}

function convertLayers(loaded: LoadedArtifacts, target: string) {
  const root = parseLayersTopology(loaded.artifacts.modelTopology);
  const { leaves } = kerasLeaves(root);
  const leaf = leaves.find((l) => l.layer.name === target);
  if (!leaf) throw new Error(`--layer: no layer '${target}' in this layers model`);
  const weights = decodeWeights(loaded.artifacts);
  const b = new OnnxBuilder();

  const weight = (l: KerasLayer, w: string, required = true): Weight | undefined => {
    const exact = weights.get(`${l.name}/${w}`);
    if (exact) return exact;
    const suffix = [...weights.keys()].filter((k) => k.endsWith(`/${l.name}/${w}`));
    if (suffix.length === 1) return weights.get(suffix[0]);
    if (required) throw new Error(`layers model: no weight '${l.name}/${w}' in the weights manifest`);
    return undefined;
  };

  // The tfjs path feeds the container of the chosen layer (tf.model({inputs: container.inputs})).
  const c = leaf.container;
  const firstInput = (m: KerasModel): KerasLayer | undefined =>
    m.sequential ? (m.layers[0]?.model ? firstInput(m.layers[0].model) : m.layers[0]) : m.layers.find((l) => l.name === m.inputs[0]?.layer);
  const inLayer = firstInput(c);
  const inShape = (inLayer?.config.batch_input_shape ?? inLayer?.config.batch_shape) as Shape | undefined;
  const input = startGraph(b, (inShape?.[3] as number | undefined) ?? 3);

  const unsupported = (l: KerasLayer, detail?: string) => new UnsupportedOpError('layer', l.name, l.className, detail);

  const activation = (l: KerasLayer, x: Val): Val => {
    const name = (l.config.activation ?? 'linear') as string;
    const act = KERAS_ACTIVATIONS[name];
    if (!act) throw unsupported(l, `activation '${name}'`);
    return applyActivation(b, x, act, `${l.name}/${name}`);
  };
  const padding = (l: KerasLayer): Pad2 => {
    const p = l.config.padding ?? 'valid';
    if (p === 'same') return { kind: 'same' };
    if (p === 'valid') return { kind: 'valid' };
    throw unsupported(l, `padding '${p}'`);
  };
  const channelsLast = (l: KerasLayer) => {
    const f = l.config.data_format;
    if (f && f !== 'channels_last') throw unsupported(l, `data_format ${f}`);
  };

  const conv = (l: KerasLayer, x: Val, foldable: boolean): Val => {
    channelsLast(l);
    const cfg = l.config;
    const strides = pair(cfg.strides ?? 1);
    const dilations = pair(cfg.dilation_rate ?? 1);
    const useBias = cfg.use_bias ?? true;
    const base: Omit<PendingConv, 'w' | 'dims' | 'group' | 'bias' | 'input' | 'base'> = { strides, dilations, pad: padding(l), foldable };
    let v: Val;
    if (l.className === 'SeparableConv2D') {
      const dw = depthwiseToOihw(weight(l, 'depthwise_kernel')!);
      const mid: Val = { rank: 4, channels: dw.dims[0], pending: { ...base, ...dw, bias: null, input: b.tensor(x), base: `${l.name}/depthwise`, foldable: false } };
      const pw = hwioToOihw(weight(l, 'pointwise_kernel')!);
      const bias = useBias ? Float32Array.from(weight(l, 'bias')!.data) : null;
      v = { rank: 4, channels: pw.dims[0], pending: { ...pw, group: 1, bias, strides: [1, 1], dilations: [1, 1], pad: { kind: 'valid' }, input: b.tensor(mid), base: l.name, foldable } };
    } else {
      const k = l.className === 'DepthwiseConv2D' ? depthwiseToOihw(weight(l, 'depthwise_kernel')!) : { ...hwioToOihw(weight(l, 'kernel')!), group: Number(cfg.groups ?? 1) };
      const bias = useBias ? Float32Array.from(weight(l, 'bias')!.data) : null;
      v = { rank: 4, channels: k.dims[0], pending: { ...base, ...k, bias, input: b.tensor(x), base: l.name } };
    }
    return activation(l, v);
  };

  const pool = (l: KerasLayer, x: Val, op: 'MaxPool' | 'AveragePool'): Val => {
    channelsLast(l);
    const k = pair(l.config.pool_size ?? 2);
    const s = l.config.strides == null ? k : pair(l.config.strides);
    const attrs: Attribute[] = [
      { name: 'kernel_shape', type: 'ints', ints: k },
      { name: 'strides', type: 'ints', ints: s },
      ...padAttrs(padding(l), k, s),
    ];
    return { name: b.node(op, [b.tensor(x)], l.name, attrs), rank: 4, channels: x.channels };
  };

  const merge = (l: KerasLayer, xs: Val[]): Val => {
    const names = xs.map((v) => b.tensor(v));
    const meta = { rank: Math.max(...xs.map((v) => v.rank)), channels: xs[0].channels };
    switch (l.className) {
      case 'Add':
        // A chain of binary Adds (not Sum): ORT fuses Conv+Add+activation.
        return { name: names.slice(1).reduce((acc, n, i) => b.node('Add', [acc, n], i === names.length - 2 ? l.name : `${l.name}/add`), names[0]), ...meta };
      case 'Multiply':
        return { name: names.slice(1).reduce((acc, n, i) => b.node('Mul', [acc, n], i === names.length - 2 ? l.name : `${l.name}/mul`), names[0]), ...meta };
      case 'Subtract':
        return { name: b.node('Sub', names, l.name), ...meta };
      case 'Maximum':
        return { name: b.node('Max', names, l.name), ...meta };
      case 'Minimum':
        return { name: b.node('Min', names, l.name), ...meta };
      case 'Average':
        return { name: b.node('Mul', [b.node('Sum', names, `${l.name}/sum`), b.scalar(1 / names.length)], l.name), ...meta };
      default: {
        // Concatenate
        const rank = xs[0].rank;
        const a0 = (l.config.axis ?? -1) < 0 ? (l.config.axis ?? -1) + rank : l.config.axis;
        const axis = rank === 4 ? [0, 2, 3, 1][a0] : a0;
        const channels = axis === 1 && xs.every((v) => v.channels) ? xs.reduce((s, v) => s + v.channels!, 0) : xs[0].channels;
        return { name: b.node('Concat', names, l.name, [{ name: 'axis', type: 'int', i: axis }]), rank, channels };
      }
    }
  };

  const apply = (l: KerasLayer, xs: Val[], foldable: boolean): Val => {
    const x = xs[0];
    const cfg = l.config;
    if (l.model) return evalModel(l.model, xs);
    switch (l.className) {
      case 'InputLayer':
        return x;
      case 'Conv2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D':
        return conv(l, x, foldable);
      case 'BatchNormalization': {
        const axis = Array.isArray(cfg.axis) ? cfg.axis[0] : (cfg.axis ?? -1);
        if (!(axis === -1 || axis === x.rank - 1)) throw unsupported(l, `axis ${axis}`);
        const gamma = cfg.scale === false ? null : weight(l, 'gamma')!.data;
        const beta = cfg.center === false ? null : weight(l, 'beta')!.data;
        const { scale, shift } = bnAffine(gamma, beta, weight(l, 'moving_mean')!.data, weight(l, 'moving_variance')!.data, cfg.epsilon ?? 1e-3);
        if (x.pending?.foldable) return { ...x, pending: foldAffine(x.pending, scale, shift, foldable) };
        const n = scale.length;
        const inputs = [b.tensor(x), b.init(`${l.name}/scale`, [n], scale), b.init(`${l.name}/shift`, [n], shift), b.init(`${l.name}/mean`, [n], new Float32Array(n)), b.init(`${l.name}/var`, [n], new Float32Array(n).fill(1))];
        return { name: b.node('BatchNormalization', inputs, l.name, [{ name: 'epsilon', type: 'float', f: 0 }]), rank: x.rank, channels: x.channels };
      }
      case 'Activation':
        return activation(l, x);
      case 'ReLU': {
        const max = cfg.max_value ?? null;
        if ((cfg.negative_slope ?? 0) !== 0 || (cfg.threshold ?? 0) !== 0) throw unsupported(l, 'negative_slope/threshold');
        if (max === null) return applyActivation(b, x, 'relu', l.name);
        return { name: b.node('Clip', [b.tensor(x), b.scalar(0), b.scalar(Number(max))], l.name), rank: x.rank, channels: x.channels };
      }
      case 'LeakyReLU':
        return applyActivation(b, x, { leaky: cfg.alpha ?? cfg.negative_slope ?? 0.3 }, l.name);
      case 'ELU':
        if ((cfg.alpha ?? 1) !== 1) return { name: b.node('Elu', [b.tensor(x)], l.name, [{ name: 'alpha', type: 'float', f: cfg.alpha }]), rank: x.rank, channels: x.channels };
        return applyActivation(b, x, 'elu', l.name);
      case 'ZeroPadding2D': {
        channelsLast(l);
        const [[t, bo], [le, r]] = zeroPads(cfg.padding);
        const pads = b.initInt64(`${l.name}/pads`, [0, 0, t, le, 0, 0, bo, r]);
        return { name: b.node('Pad', [b.tensor(x), pads], l.name, [{ name: 'mode', type: 'string', s: 'constant' }]), rank: 4, channels: x.channels };
      }
      case 'MaxPooling2D':
        return pool(l, x, 'MaxPool');
      case 'AveragePooling2D':
        return pool(l, x, 'AveragePool');
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        channelsLast(l);
        const keep = cfg.keepdims ? 1 : 0;
        const op = l.className === 'GlobalAveragePooling2D' ? 'ReduceMean' : 'ReduceMax';
        return { name: b.node(op, [b.tensor(x)], l.name, [{ name: 'axes', type: 'ints', ints: [2, 3] }, { name: 'keepdims', type: 'int', i: keep }]), rank: keep ? 4 : 2, channels: x.channels };
      }
      case 'Add':
      case 'Multiply':
      case 'Subtract':
      case 'Maximum':
      case 'Minimum':
      case 'Average':
      case 'Concatenate':
        return merge(l, xs);
      case 'Dropout':
      case 'SpatialDropout2D':
      case 'GaussianDropout':
      case 'GaussianNoise':
      case 'AlphaDropout':
        return x; // inference: identity
      default:
        throw unsupported(l);
    }
  };

  /** Runs a model on given values; stops at the target layer when it is in this model. */
  const evalModel = (m: KerasModel, inputs: Val[], stopAt?: string): Val => {
    if (m.sequential) {
      let v = inputs[0];
      for (let i = 0; i < m.layers.length; i++) {
        const l = m.layers[i];
        const isTarget = l.name === stopAt;
        v = apply(l, [v], !isTarget && i < m.layers.length - 1);
        if (isTarget) return v;
      }
      return v;
    }
    const byName = new Map(m.layers.map((l) => [l.name, l]));
    const consumers = new Map<string, number>();
    for (const l of m.layers) for (const node of l.inbound) for (const r of node) consumers.set(r.layer, (consumers.get(r.layer) ?? 0) + 1);
    for (const r of m.outputs) consumers.set(r.layer, (consumers.get(r.layer) ?? 0) + 1);
    const memo = new Map<string, Val>();
    const get = (ref: Ref): Val => {
      const key = `${ref.layer}:${ref.node}`;
      const hit = memo.get(key);
      if (hit) return hit;
      const at = m.inputs.findIndex((r) => r.layer === ref.layer);
      const l = byName.get(ref.layer);
      if (!l) throw new Error(`layers model: unknown layer '${ref.layer}' in ${m.name}`);
      let v: Val;
      if (at >= 0) v = inputs[at];
      else {
        const inbound = l.inbound[ref.node];
        if (!inbound) throw new Error(`layers model: layer '${l.name}' has no inbound node ${ref.node}`);
        v = apply(l, inbound.map(get), l.name !== target && consumers.get(l.name) === 1);
      }
      memo.set(key, v);
      return v;
    };
    if (stopAt !== undefined) return get({ layer: stopAt, node: 0, tensor: 0 });
    if (m.outputs.length !== 1) throw new UnsupportedOpError('layer', m.name, m.className, 'nested model with several outputs');
    return get(m.outputs[0]);
  };

  const out = evalModel(c, [input], target);
  return finish(b, ONNX_INPUT, input.channels ?? 3, out);
}

/**
 * An ONNX model computing the feature map at `layer` (graph node name, or layers-model layer name,
 * nested models included), NHWC in and out.
 */
export function convertToOnnx(loaded: LoadedArtifacts, layer: string): { onnx: Uint8Array; inputName: string; outputName: string; channels?: number } {
  return loaded.format === 'graph' ? convertGraph(loaded, layer) : convertLayers(loaded, layer);
}
