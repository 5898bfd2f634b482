/** TF Conv2D / DepthwiseConv2dNative and their grappler-fused forms (bias + activation fused in). */
import { applyActivation, type Activation } from './activations.js';
import type { PendingConv, Val } from './builder.js';
import { depthwiseToOihw, foldAffine, hwioToOihw } from './fold.js';
import { layoutConst, perChannelConst } from './tf-consts.js';
import type { GraphCx as GraphContext } from './context.js';
import { b64, checkFormat, ints, padOf, unsupportedNode, type TfNode } from './tf-node.js';

/** One fused op applied to the conv's value; `arg()` takes the next extra input (bias, prelu alpha). */
type FusedOp = (cx: GraphContext, n: TfNode, v: Val, arg: () => string, outChannels: number) => Val;

const fusedActivation = (act: Activation, suffix: string): FusedOp => (cx, n, v) => applyActivation(cx.b, v, act, `${n.name}/${suffix}`);

/** Keyed by tfjs's lower-cased fused op names. */
const FUSED_OPS = new Map<string, FusedOp>([
  [
    'biasadd',
    (cx, n, v, arg, outChannels) => {
      const bias = perChannelConst(cx.needConst(n, arg(), 'bias'), outChannels);
      if (!bias) throw unsupportedNode(n, 'bias shape');
      return { ...v, pending: foldAffine(v.pending!, null, bias, true) };
    },
  ],
  ['relu', fusedActivation('relu', 'relu')],
  ['relu6', fusedActivation('relu6', 'relu6')],
  ['elu', fusedActivation('elu', 'elu')],
  ['sigmoid', fusedActivation('sigmoid', 'sigmoid')],
  ['tanh', fusedActivation('tanh', 'tanh')],
  ['leakyrelu', (cx, n, v) => applyActivation(cx.b, v, { leaky: n.attr?.leakyrelu_alpha?.f ?? 0.2 }, `${n.name}/leaky`)],
  [
    'prelu',
    (cx, n, v, arg) => {
      const alpha = layoutConst(cx.b, cx.needConst(n, arg(), 'prelu alpha'), v, `${n.name}/alpha`);
      if (!alpha) throw unsupportedNode(n, 'prelu alpha shape');
      return { name: cx.b.node('PRelu', [cx.b.tensor(v), alpha], `${n.name}/prelu`), rank: 4, channels: v.channels };
    },
  ],
]);

function applyFusedOps(cx: GraphContext, n: TfNode, v: Val, outChannels: number): Val {
  // As tfjs: op names compared case-insensitively.
  const ops = (n.attr?.fused_ops?.list?.s ?? []).map((e) => b64(e)!.toLowerCase());
  const numArgs = Number(n.attr?.num_args?.i ?? 0);
  const args = n.input!.slice(2, 2 + numArgs);
  let i = 0;
  const arg = () => args[i++];
  for (const op of ops) {
    const apply = FUSED_OPS.get(op);
    if (!apply) throw unsupportedNode(n, `fused op ${op}`);
    v = apply(cx, n, v, arg, outChannels);
  }
  // The fused node is the conv's only name in the graph: its consumers decide foldability.
  if (v.pending) v.pending.foldable = cx.foldable(n.name);
  return v;
}

export function convNode(cx: GraphContext, n: TfNode, depthwise: boolean): Val {
  checkFormat(n);
  const x = cx.value(n.input![0]);
  const f = cx.needConst(n, n.input![1], 'filter');
  const s = ints(n, 'strides', [1, 1, 1, 1]);
  const d = ints(n, 'dilations', [1, 1, 1, 1]);
  const k = depthwise ? depthwiseToOihw(f) : { ...hwioToOihw(f), group: 1 };
  let group = k.group;
  // A Conv2D whose filter sees fewer input channels than the input has is a grouped conv.
  if (!depthwise && f.shape[2] !== x.channels && x.channels && x.channels % f.shape[2] === 0) group = x.channels / f.shape[2];
  const pending: PendingConv = {
    w: k.w, dims: k.dims, bias: null, group, strides: [s[1], s[2]], dilations: [d[1], d[2]], pad: padOf(n),
    input: cx.b.tensor(x), base: n.name, foldable: cx.foldable(n.name),
  };
  const v: Val = { pending, rank: 4, channels: k.dims[0] };
  return n.op.includes('Fused') ? applyFusedOps(cx, n, v, k.dims[0]) : v;
}
