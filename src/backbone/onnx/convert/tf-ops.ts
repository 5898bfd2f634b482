/** Per-op rules of the TF graph converter, as a table keyed by TF op name (tf-graph.ts dispatches). */
import type { Attribute } from '../proto.js';
import { applyActivation, type Activation } from './activations.js';
import { concat, padAttrs, type Val } from './builder.js';
import { batchNorm, bnAffine, foldAffine, pendingOf } from './fold.js';
import { layoutConst, perChannelConst } from './tf-consts.js';
import { convNode } from './tf-conv.js';
import type { GraphCx as GraphContext } from './context.js';
import { checkFormat, ints, padOf, str, unsupportedNode, type TfNode } from './tf-node.js';

export type OpHandler = (cx: GraphContext, n: TfNode) => Val;

function placeholder(cx: GraphContext, n: TfNode): Val {
  if (n !== cx.placeholder) throw unsupportedNode(n, 'a second model input');
  return cx.input;
}

/** Elementwise op with a constant folds into a pending conv when per-channel; else a broadcast node. */
function binary(cx: GraphContext, n: TfNode, onnxOp: 'Add' | 'Sub' | 'Mul'): Val {
  const b = cx.b;
  const [ra, rb] = [n.input![0], n.input![1]];
  const [ca, cb] = [cx.constOf(ra), cx.constOf(rb)];
  if (ca && cb) throw unsupportedNode(n, 'both operands constant');
  const x = cx.value(ca ? rb : ra);
  const c = ca ?? cb;
  if (!c) {
    const y = cx.value(rb);
    return { name: b.node(onnxOp, [b.tensor(x), b.tensor(y)], n.name), rank: Math.max(x.rank, y.rank), channels: x.channels ?? y.channels };
  }
  const p = pendingOf(x);
  const pc = p && x.channels ? perChannelConst(c, x.channels) : undefined;
  if (p && pc) {
    if (onnxOp === 'Mul') return { ...x, pending: foldAffine(p, pc, null, cx.foldable(n.name)) };
    if (onnxOp === 'Add') return { ...x, pending: foldAffine(p, null, pc, cx.foldable(n.name)) };
    // conv - c folds; c - conv would negate the weights too, so it stays a Sub node.
    if (!ca) return { ...x, pending: foldAffine(p, null, pc.map((v) => -v), cx.foldable(n.name)) };
  }
  const cname = layoutConst(b, c, x, `${n.name}/const`);
  if (!cname) throw unsupportedNode(n, `constant of shape [${c.shape.join(',')}]`);
  const inputs = ca ? [cname, b.tensor(x)] : [b.tensor(x), cname];
  return { name: b.node(onnxOp, inputs, n.name), rank: x.rank, channels: x.channels };
}

function pool(cx: GraphContext, n: TfNode, op: 'MaxPool' | 'AveragePool'): Val {
  checkFormat(n);
  const x = cx.value(n.input![0]);
  const k = ints(n, 'ksize', [1, 1, 1, 1]);
  const s = ints(n, 'strides', [1, 1, 1, 1]);
  if (k[0] !== 1 || k[3] !== 1 || s[0] !== 1 || s[3] !== 1) throw unsupportedNode(n, 'pooling over batch/channels');
  const attrs: Attribute[] = [
    { name: 'kernel_shape', type: 'ints', ints: [k[1], k[2]] },
    { name: 'strides', type: 'ints', ints: [s[1], s[2]] },
    ...padAttrs(padOf(n), [k[1], k[2]], [s[1], s[2]]),
  ];
  // TF's AvgPool averages over the valid pixels only: count_include_pad 0 (the ONNX default).
  return { name: cx.b.node(op, [cx.b.tensor(x)], n.name, attrs), rank: 4, channels: x.channels };
}

function fusedBatchNorm(cx: GraphContext, n: TfNode): Val {
  checkFormat(n);
  const x = cx.one(n);
  const [scale, offset, mean, variance] = n.input!.slice(1, 5).map((r, i) => cx.needConst(n, r, ['scale', 'offset', 'mean', 'variance'][i]).data);
  const { scale: s, shift } = bnAffine(scale, offset, mean, variance, n.attr?.epsilon?.f ?? 1e-3);
  return batchNorm(cx.b, x, n.name, s, shift, () => cx.foldable(n.name));
}

/** Mean/Max over H and W only: a global pool. */
function reduce(cx: GraphContext, n: TfNode): Val {
  const x = cx.one(n);
  const axes = [...cx.needConst(n, n.input![1], 'reduction axes').data].map((a) => (a < 0 ? a + x.rank : a));
  if (x.rank !== 4 || axes.length !== 2 || !axes.includes(1) || !axes.includes(2)) throw unsupportedNode(n, `reduction over axes [${axes.join(',')}]`);
  const keep = n.attr?.keep_dims?.b ?? false;
  const op = n.op === 'Mean' ? 'ReduceMean' : 'ReduceMax';
  const attrs: Attribute[] = [{ name: 'axes', type: 'ints', ints: [2, 3] }, { name: 'keepdims', type: 'int', i: keep ? 1 : 0 }];
  return { name: cx.b.node(op, [cx.b.tensor(x)], n.name, attrs), rank: keep ? 4 : 2, channels: x.channels };
}

function pad(cx: GraphContext, n: TfNode): Val {
  const x = cx.one(n);
  const p = [...cx.needConst(n, n.input![1], 'paddings').data]; // NHWC [[b,a] x 4]
  if (x.rank !== 4 || p.length !== 8) throw unsupportedNode(n, 'paddings of rank != 4');
  // ONNX wants all begins (NCHW) then all ends.
  const pads = cx.b.initInt64(`${n.name}/pads`, [p[0], p[6], p[2], p[4], p[1], p[7], p[3], p[5]]);
  const inputs = [cx.b.tensor(x), pads];
  let mode = 'constant';
  if (n.op === 'PadV2') {
    const cv = cx.needConst(n, n.input![2], 'constant value');
    inputs.push(cx.b.init(`${n.name}/value`, [], [cv.data[0]]));
  } else if (n.op === 'MirrorPad') {
    mode = str(n, 'mode') === 'REFLECT' ? 'reflect' : '';
    if (!mode) throw unsupportedNode(n, `mode ${str(n, 'mode')}`);
  }
  return { name: cx.b.node('Pad', inputs, n.name, [{ name: 'mode', type: 'string', s: mode }]), rank: 4, channels: x.channels };
}

function concatV2(cx: GraphContext, n: TfNode): Val {
  const refs = n.input!.filter((r) => !r.startsWith('^'));
  const axis = Number(cx.needConst(n, refs[refs.length - 1], 'axis').data[0]);
  const xs = refs.slice(0, -1).map((r) => cx.value(r));
  return concat(cx.b, xs, axis, n.name);
}

const unary = (act: Activation): OpHandler => (cx, n) => applyActivation(cx.b, cx.one(n), act, n.name);
const conv: OpHandler = (cx, n) => convNode(cx, n, false);
const depthwise: OpHandler = (cx, n) => convNode(cx, n, true);
const add: OpHandler = (cx, n) => binary(cx, n, 'Add');

export const GRAPH_OPS = new Map<string, OpHandler>([
  ['Placeholder', placeholder],
  ['Identity', (cx, n) => cx.one(n)],
  ['Conv2D', conv],
  ['_FusedConv2D', conv],
  ['FusedConv2D', conv],
  ['DepthwiseConv2dNative', depthwise],
  ['FusedDepthwiseConv2dNative', depthwise],
  [
    'BiasAdd',
    (cx, n) => {
      checkFormat(n);
      return binary(cx, n, 'Add');
    },
  ],
  ['Add', add],
  ['AddV2', add],
  ['Sub', (cx, n) => binary(cx, n, 'Sub')],
  ['Mul', (cx, n) => binary(cx, n, 'Mul')],
  ['Relu', unary('relu')],
  ['Relu6', unary('relu6')],
  ['Elu', unary('elu')],
  ['Selu', unary('selu')],
  ['Sigmoid', unary('sigmoid')],
  ['Tanh', unary('tanh')],
  ['LeakyRelu', (cx, n) => applyActivation(cx.b, cx.one(n), { leaky: n.attr?.alpha?.f ?? 0.2 }, n.name)],
  ['MaxPool', (cx, n) => pool(cx, n, 'MaxPool')],
  ['AvgPool', (cx, n) => pool(cx, n, 'AveragePool')],
  ['FusedBatchNorm', fusedBatchNorm],
  ['FusedBatchNormV2', fusedBatchNorm],
  ['FusedBatchNormV3', fusedBatchNorm],
  ['Mean', reduce],
  ['Max', reduce],
  ['Pad', pad],
  ['PadV2', pad],
  ['MirrorPad', pad],
  ['ConcatV2', concatV2],
]);
