/** Per-layer-class rules of the Keras converter, as a table keyed by class name (keras-convert.ts dispatches). */
import type { Attribute } from '../proto.js';
import { UnsupportedOpError } from './common.js';
import { applyActivation, KERAS_ACTIVATIONS } from './activations.js';
import { concat, padAttrs, type Pad2, type PendingConv, type Val } from './builder.js';
import { batchNorm, bnAffine, depthwiseToOihw, hwioToOihw } from './fold.js';
import type { KerasCx as KerasContext } from './context.js';
import { pair, zeroPads, type KerasLayer } from '../../keras/config.js';

/** `foldable`: whether a conv's output may still absorb a following BatchNormalization (single consumer). */
export type LayerOp = (cx: KerasContext, l: KerasLayer, xs: Val[], foldable: boolean) => Val;

export const unsupportedLayer = (l: KerasLayer, detail?: string) => new UnsupportedOpError('layer', l.name, l.className, detail);

/** The layer's own `activation` config (Conv2D, Dense, Activation layers). */
export function kerasActivation(cx: KerasContext, l: KerasLayer, x: Val): Val {
  const name = (l.config.activation ?? 'linear') as string;
  const act = KERAS_ACTIVATIONS[name];
  if (!act) throw unsupportedLayer(l, `activation '${name}'`);
  return applyActivation(cx.b, x, act, `${l.name}/${name}`);
}

function padding(l: KerasLayer): Pad2 {
  const p = l.config.padding ?? 'valid';
  if (p === 'same') return { kind: 'same' };
  if (p === 'valid') return { kind: 'valid' };
  throw unsupportedLayer(l, `padding '${p}'`);
}

/** The converter maps NHWC axes to NCHW; channels_first layers would need the other mapping. */
function channelsLast(l: KerasLayer): void {
  const f = l.config.data_format;
  if (f && f !== 'channels_last') throw unsupportedLayer(l, `data_format ${f}`);
}

type ConvBase = Omit<PendingConv, 'w' | 'dims' | 'group' | 'bias' | 'input' | 'base'>;

const biasOf = (cx: KerasContext, l: KerasLayer, useBias: boolean) => (useBias ? Float32Array.from(cx.weight(l, 'bias')!.data) : null);

/** Depthwise conv (emitted as is) then a pending 1x1 pointwise conv that carries bias and folding. */
function separableConv(cx: KerasContext, l: KerasLayer, x: Val, base: ConvBase, useBias: boolean, foldable: boolean): Val {
  const dw = depthwiseToOihw(cx.weight(l, 'depthwise_kernel')!);
  const mid: Val = { rank: 4, channels: dw.dims[0], pending: { ...base, ...dw, bias: null, input: cx.b.tensor(x), base: `${l.name}/depthwise`, foldable: false } };
  const pw = hwioToOihw(cx.weight(l, 'pointwise_kernel')!);
  const bias = biasOf(cx, l, useBias);
  const pending: PendingConv = { ...pw, group: 1, bias, strides: [1, 1], dilations: [1, 1], pad: { kind: 'valid' }, input: cx.b.tensor(mid), base: l.name, foldable };
  return { rank: 4, channels: pw.dims[0], pending };
}

const conv: LayerOp = (cx, l, [x], foldable) => {
  channelsLast(l);
  const cfg = l.config;
  const strides = pair(cfg.strides ?? 1);
  const dilations = pair(cfg.dilation_rate ?? 1);
  const useBias = cfg.use_bias ?? true;
  const base: ConvBase = { strides, dilations, pad: padding(l), foldable };
  let v: Val;
  if (l.className === 'SeparableConv2D') v = separableConv(cx, l, x, base, useBias, foldable);
  else {
    const k = l.className === 'DepthwiseConv2D' ? depthwiseToOihw(cx.weight(l, 'depthwise_kernel')!) : { ...hwioToOihw(cx.weight(l, 'kernel')!), group: Number(cfg.groups ?? 1) };
    const bias = biasOf(cx, l, useBias);
    v = { rank: 4, channels: k.dims[0], pending: { ...base, ...k, bias, input: cx.b.tensor(x), base: l.name } };
  }
  return kerasActivation(cx, l, v);
};

const batchNormalization: LayerOp = (cx, l, [x], foldable) => {
  const cfg = l.config;
  const axis = Array.isArray(cfg.axis) ? cfg.axis[0] : (cfg.axis ?? -1);
  // Only the channel axis maps to a per-channel affine on NCHW.
  if (!(axis === -1 || axis === x.rank - 1)) throw unsupportedLayer(l, `axis ${axis}`);
  const gamma = cfg.scale === false ? null : cx.weight(l, 'gamma')!.data;
  const beta = cfg.center === false ? null : cx.weight(l, 'beta')!.data;
  const { scale, shift } = bnAffine(gamma, beta, cx.weight(l, 'moving_mean')!.data, cx.weight(l, 'moving_variance')!.data, cfg.epsilon ?? 1e-3);
  return batchNorm(cx.b, x, l.name, scale, shift, () => foldable);
};

const relu: LayerOp = (cx, l, [x]) => {
  const cfg = l.config;
  const max = cfg.max_value ?? null;
  if ((cfg.negative_slope ?? 0) !== 0 || (cfg.threshold ?? 0) !== 0) throw unsupportedLayer(l, 'negative_slope/threshold');
  if (max === null) return applyActivation(cx.b, x, 'relu', l.name);
  return { name: cx.b.node('Clip', [cx.b.tensor(x), cx.b.scalar(0), cx.b.scalar(Number(max))], l.name), rank: x.rank, channels: x.channels };
};

const elu: LayerOp = (cx, l, [x]) => {
  const alpha = l.config.alpha;
  if ((alpha ?? 1) !== 1) return { name: cx.b.node('Elu', [cx.b.tensor(x)], l.name, [{ name: 'alpha', type: 'float', f: alpha }]), rank: x.rank, channels: x.channels };
  return applyActivation(cx.b, x, 'elu', l.name);
};

const zeroPadding: LayerOp = (cx, l, [x]) => {
  channelsLast(l);
  const [[t, bo], [le, r]] = zeroPads(l.config.padding);
  // ONNX wants all begins (NCHW) then all ends.
  const pads = cx.b.initInt64(`${l.name}/pads`, [0, 0, t, le, 0, 0, bo, r]);
  return { name: cx.b.node('Pad', [cx.b.tensor(x), pads], l.name, [{ name: 'mode', type: 'string', s: 'constant' }]), rank: 4, channels: x.channels };
};

const pool = (op: 'MaxPool' | 'AveragePool'): LayerOp => (cx, l, [x]) => {
  channelsLast(l);
  const k = pair(l.config.pool_size ?? 2);
  const s = l.config.strides == null ? k : pair(l.config.strides);
  const attrs: Attribute[] = [
    { name: 'kernel_shape', type: 'ints', ints: k },
    { name: 'strides', type: 'ints', ints: s },
    ...padAttrs(padding(l), k, s),
  ];
  return { name: cx.b.node(op, [cx.b.tensor(x)], l.name, attrs), rank: 4, channels: x.channels };
};

const globalPool = (op: 'ReduceMean' | 'ReduceMax'): LayerOp => (cx, l, [x]) => {
  channelsLast(l);
  const keep = l.config.keepdims ? 1 : 0;
  const attrs: Attribute[] = [{ name: 'axes', type: 'ints', ints: [2, 3] }, { name: 'keepdims', type: 'int', i: keep }];
  return { name: cx.b.node(op, [cx.b.tensor(x)], l.name, attrs), rank: keep ? 4 : 2, channels: x.channels };
};

/** Merge layers; inputs are emitted first, in order. `name` is the merge node for all but Concatenate. */
const merge = (emit: (cx: KerasContext, l: KerasLayer, names: string[]) => string): LayerOp => (cx, l, xs) => {
  const names = xs.map((v) => cx.b.tensor(v));
  return { name: emit(cx, l, names), rank: Math.max(...xs.map((v) => v.rank)), channels: xs[0].channels };
};
/** A chain of binary ops (not Sum): ORT fuses Conv+Add+activation. */
const chain = (op: 'Add' | 'Mul', suffix: string) =>
  merge((cx, l, names) => names.slice(1).reduce((acc, n, i) => cx.b.node(op, [acc, n], i === names.length - 2 ? l.name : `${l.name}/${suffix}`), names[0]));
const nary = (op: string) => merge((cx, l, names) => cx.b.node(op, names, l.name));

const concatenate: LayerOp = (cx, l, xs) => {
  xs.forEach((v) => cx.b.tensor(v));
  return concat(cx.b, xs, l.config.axis ?? -1, l.name);
};

/** InputLayer passes its value through; dropout/noise layers do nothing at inference. */
const identity: LayerOp = (_cx, _l, [x]) => x;

export const LAYER_OPS = new Map<string, LayerOp>([
  ['InputLayer', identity],
  ['Conv2D', conv],
  ['DepthwiseConv2D', conv],
  ['SeparableConv2D', conv],
  ['BatchNormalization', batchNormalization],
  ['Activation', (cx, l, [x]) => kerasActivation(cx, l, x)],
  ['ReLU', relu],
  ['LeakyReLU', (cx, l, [x]) => applyActivation(cx.b, x, { leaky: l.config.alpha ?? l.config.negative_slope ?? 0.3 }, l.name)],
  ['ELU', elu],
  ['ZeroPadding2D', zeroPadding],
  ['MaxPooling2D', pool('MaxPool')],
  ['AveragePooling2D', pool('AveragePool')],
  ['GlobalAveragePooling2D', globalPool('ReduceMean')],
  ['GlobalMaxPooling2D', globalPool('ReduceMax')],
  ['Add', chain('Add', 'add')],
  ['Multiply', chain('Mul', 'mul')],
  ['Subtract', nary('Sub')],
  ['Maximum', nary('Max')],
  ['Minimum', nary('Min')],
  ['Average', merge((cx, l, names) => cx.b.node('Mul', [cx.b.node('Sum', names, `${l.name}/sum`), cx.b.scalar(1 / names.length)], l.name))],
  ['Concatenate', concatenate],
  ['Dropout', identity],
  ['SpatialDropout2D', identity],
  ['GaussianDropout', identity],
  ['GaussianNoise', identity],
  ['AlphaDropout', identity],
]);
