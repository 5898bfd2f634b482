/**
 * Keras layers model → ONNX, from the input of the chosen layer's container up to that layer
 * (nested models included). Layers evaluate on demand from the target backwards (memoised); the
 * per-class rules live in keras-ops.ts.
 */
import type { LoadedArtifacts } from '../../artifacts.js';
import { ModelOptionError } from '../../errors.js';
import { ONNX_INPUT, UnsupportedOpError, type ConvertResult } from './common.js';
import type { KerasCx } from './context.js';
import { finishGraph, OnnxBuilder, startGraph, type Val } from './builder.js';
import { parseLayersTopology, type KerasLayer, type KerasModel, type Ref, type Shape } from '../../keras/config.js';
import { LAYER_OPS, unsupportedLayer } from './keras-ops.js';
import { kerasLeaves } from '../../keras/shapes.js';
import { decodeWeights, type Weight } from './weights.js';

/** One conversion's state: the builder, the weights, and the target layer (never folded away). */
export class KerasContext implements KerasCx {
  readonly b = new OnnxBuilder();

  constructor(
    private readonly weights: Map<string, Weight>,
    private readonly target: string,
  ) {}

  /** `layer/weight`, or the one manifest name ending in it (nested models prefix their own name). */
  weight(l: KerasLayer, w: string, required = true): Weight | undefined {
    const exact = this.weights.get(`${l.name}/${w}`);
    if (exact) return exact;
    const suffix = [...this.weights.keys()].filter((k) => k.endsWith(`/${l.name}/${w}`));
    if (suffix.length === 1) return this.weights.get(suffix[0]);
    if (required) throw new Error(`layers model: no weight '${l.name}/${w}' in the weights manifest`);
    return undefined;
  }

  apply(l: KerasLayer, xs: Val[], foldable: boolean): Val {
    if (l.model) return this.evalModel(l.model, xs);
    const op = LAYER_OPS.get(l.className);
    if (!op) throw unsupportedLayer(l);
    return op(this, l, xs, foldable);
  }

  /** Runs a model on given values; stops at the target layer when it is in this model. */
  evalModel(m: KerasModel, inputs: Val[], stopAt?: string): Val {
    return m.sequential ? this.evalSequential(m, inputs[0], stopAt) : this.evalFunctional(m, inputs, stopAt);
  }

  private evalSequential(m: KerasModel, v: Val, stopAt: string | undefined): Val {
    for (let i = 0; i < m.layers.length; i++) {
      const l = m.layers[i];
      const isTarget = l.name === stopAt;
      // The last layer's output leaves this model: its consumers are unknown here, so no folding.
      v = this.apply(l, [v], !isTarget && i < m.layers.length - 1);
      if (isTarget) return v;
    }
    return v;
  }

  private evalFunctional(m: KerasModel, inputs: Val[], stopAt: string | undefined): Val {
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
        v = this.apply(l, inbound.map(get), l.name !== this.target && consumers.get(l.name) === 1);
      }
      memo.set(key, v);
      return v;
    };
    if (stopAt !== undefined) return get({ layer: stopAt, node: 0, tensor: 0 });
    if (m.outputs.length !== 1) throw new UnsupportedOpError('layer', m.name, m.className, 'nested model with several outputs');
    return get(m.outputs[0]);
  }
}

/** The layer that feeds a model (through nested Sequentials), whose config may carry the input shape. */
function firstInput(m: KerasModel): KerasLayer | undefined {
  return m.sequential ? (m.layers[0]?.model ? firstInput(m.layers[0].model) : m.layers[0]) : m.layers.find((l) => l.name === m.inputs[0]?.layer);
}

export function convertLayers(loaded: LoadedArtifacts, target: string): ConvertResult {
  const root = parseLayersTopology(loaded.artifacts.modelTopology);
  const { leaves } = kerasLeaves(root);
  const leaf = leaves.find((l) => l.layer.name === target);
  if (!leaf) throw new ModelOptionError('--layer', `--layer: no layer '${target}' in this layers model`);
  const cx = new KerasContext(decodeWeights(loaded.artifacts), target);
  // The tfjs path feeds the container of the chosen layer (tf.model({inputs: container.inputs})).
  const c = leaf.container;
  const inLayer = firstInput(c);
  const inShape = (inLayer?.config.batch_input_shape ?? inLayer?.config.batch_shape) as Shape | undefined;
  const input = startGraph(cx.b, (inShape?.[3] as number | undefined) ?? 3);
  const out = cx.evalModel(c, [input], target);
  return finishGraph(cx.b, ONNX_INPUT, input.channels ?? 3, out);
}
