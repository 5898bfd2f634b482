/**
 * Keras output-shape inference on the JSON config (no tfjs needed), and the leaf-layer list with
 * shapes that `info --layers` and the default-layer rule (rules.ts) read, for both engines.
 */
import { orderedLayers, pair, zeroPads, type KerasLayer, type KerasModel, type Ref, type Shape } from './config.js';

export interface KerasLeaf { readonly layer: KerasLayer; readonly container: KerasModel; readonly shape: (number | null)[] | null }

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

/** Output shape of one layer class from its first input `x`, its config and all inputs. */
type ShapeRule = (x: Shape | null, c: Record<string, any>, ins: (Shape | null)[]) => Shape | null;

const convShape: ShapeRule = (x, c) => (x ? [x[0], ...spatial(x, c, pair(c.kernel_size)), c.filters] : null);
const poolShape: ShapeRule = (x, c) => {
  const k = pair(c.pool_size ?? 2);
  return x ? [x[0], ...spatial(x, { ...c, strides: c.strides ?? k }, k), x[3]] : null;
};
const globalPoolShape: ShapeRule = (x, c) => (x ? (c.keepdims ? [x[0], 1, 1, x[3]] : [x[0], x[3]]) : null);

const SHAPE_RULES = new Map<string, ShapeRule>([
  [
    'InputLayer',
    (x, c) => {
      const s = (c.batch_input_shape ?? c.batch_shape) as Shape | undefined;
      return s ? [...s] : x;
    },
  ],
  ['Conv2D', convShape],
  ['SeparableConv2D', convShape],
  ['DepthwiseConv2D', (x, c) => (x ? [x[0], ...spatial(x, c, pair(c.kernel_size)), x[3] === null ? null : x[3] * (c.depth_multiplier ?? 1)] : null)],
  ['MaxPooling2D', poolShape],
  ['AveragePooling2D', poolShape],
  [
    'ZeroPadding2D',
    (x, c) => {
      const [[t, b], [l, r]] = zeroPads(c.padding);
      return x ? [x[0], x[1] === null ? null : x[1] + t + b, x[2] === null ? null : x[2] + l + r, x[3]] : null;
    },
  ],
  ['GlobalAveragePooling2D', globalPoolShape],
  ['GlobalMaxPooling2D', globalPoolShape],
  ['Dense', (x, c) => (x ? [...x.slice(0, -1), c.units] : null)],
  ['Reshape', (x, c) => (x ? [x[0], ...(c.target_shape as number[])] : null)],
  ['Flatten', (x) => (x ? [x[0], x.slice(1).every((d) => d !== null) ? x.slice(1).reduce((a, b) => a! * b!, 1) : null] : null)],
  [
    'Concatenate',
    (x, c, ins) => {
      if (ins.some((s) => !s)) return null;
      const axis = c.axis ?? -1;
      const r = x!.length;
      const a = axis < 0 ? axis + r : axis;
      const out = [...x!];
      out[a] = ins.every((s) => s![a] !== null) ? ins.reduce((sum, s) => sum + (s![a] as number), 0) : null;
      return out;
    },
  ],
]);

function layerShape(l: KerasLayer, ins: (Shape | null)[], shapes: Map<KerasLayer, Shape | null>): Shape | null {
  const c = l.config;
  // A Sequential's first layer may carry the input shape itself.
  const x = ins[0] ?? ((c.batch_input_shape ?? c.batch_shape ?? null) as Shape | null);
  if (l.model) return inferShapes(l.model, ins, shapes)[0];
  const rule = SHAPE_RULES.get(l.className);
  // Everything else (activations, BN, dropout, merges other than Concatenate) keeps its input shape.
  return rule ? rule(x, c, ins) : x ? [...x] : null;
}

function inferFunctional(m: KerasModel, inputs: (Shape | null)[], shapes: Map<KerasLayer, Shape | null>): (Shape | null)[] {
  const byName = new Map(m.layers.map((l) => [l.name, l]));
  const memo = new Map<string, Shape | null>();
  const get = (ref: Ref): Shape | null => {
    const key = `${ref.layer}:${ref.node}`;
    if (memo.has(key)) return memo.get(key)!;
    const l = byName.get(ref.layer);
    let s: Shape | null = null;
    if (l) {
      const at = m.inputs.findIndex((r) => r.layer === ref.layer);
      s = at >= 0 && l.className === 'InputLayer' ? layerShape(l, [inputs[at] ?? null], shapes) : layerShape(l, (l.inbound[ref.node] ?? []).map(get), shapes);
      // A layer called more than once keeps the shape of its first computed call.
      if (!shapes.has(l)) shapes.set(l, s);
    }
    memo.set(key, s);
    return s;
  };
  for (const l of m.layers) if (l.inbound.length > 0 || l.className === 'InputLayer') get({ layer: l.name, node: 0, tensor: 0 });
  return m.outputs.map(get);
}

/** Output shapes as tfjs sees them after the input is freed: spatial dims null, channels known. */
export function inferShapes(m: KerasModel, inputs: (Shape | null)[], shapes: Map<KerasLayer, Shape | null>): (Shape | null)[] {
  if (!m.sequential) return inferFunctional(m, inputs, shapes);
  let cur = inputs[0] ?? null;
  for (const l of m.layers) {
    cur = layerShape(l, [cur], shapes);
    shapes.set(l, cur);
  }
  return [cur];
}

/** Leaf layers in tfjs's order (nested models flattened), with output shapes: what tfjs's model.layers walk gives. */
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
