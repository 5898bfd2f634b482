/**
 * Which layer is the feature map, and which range the pixels go in: the one place both engines
 * (tfjs and ONNX Runtime) take these decisions from, on the model.json alone — no model runtime is
 * loaded to decide. The layer is part of the .onnx cache key, and the engines' feature maps must be
 * interchangeable, so there is exactly one rule per question.
 */
import type { InputRange, InputRangeSource, LayerCandidate, ModelFormat } from './contract.js';
import { ModelOptionError } from './errors.js';
import { pair, parseLayersTopology, type KerasModel } from './keras/config.js';
import { kerasLeaves, type KerasLeaf } from './keras/shapes.js';

/** Layers after which the spatial map is gone: the feature map is what feeds the first of them. */
export const GLOBAL_POOLS: ReadonlySet<string> = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten']);

/** A GraphDef node as model.json stores it (only what the rules read). */
export interface GraphNode { name: string; op: string; input?: string[] }

/** A node input reference without the control-dependency '^' and the ':output' suffix. */
export const cleanInput = (name: string) => name.replace(/^\^/, '').replace(/:\d+$/, '');

/** The GraphDef nodes of a graph model's topology (none for a layers model). */
export function graphNodes(format: ModelFormat, topology: unknown): GraphNode[] {
  return format === 'graph' ? ((topology as { node?: GraphNode[] }).node ?? []) : [];
}

/**
 * Graph models: the input of the global pool — the registry's embedding node, else the first Mean,
 * else the last AvgPool.
 */
export function autoGraphNode(nodes: GraphNode[], embeddingNode?: string): string {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const pool =
    (embeddingNode && byName.get(embeddingNode)) ||
    nodes.find((n) => n.op === 'Mean') ||
    [...nodes].reverse().find((n) => n.op === 'AvgPool');
  const input = pool?.input?.[0];
  if (!input) throw new ModelOptionError('--layer', '--layer: no global-pool node found in this graph model; name the feature node with --layer');
  return cleanInput(input);
}

/**
 * Layers models: the last conv feature map, i.e. the input of the first global pooling. A 1x1 conv
 * right before it with one filter per output class is a classifier head (Darknet, NiN): then the
 * map before that conv. Without a global pool: the last layer with a 4-D output.
 */
export function autoKerasLeaf(root: KerasModel, computed = kerasLeaves(root)): KerasLeaf {
  const { leaves, outputShape } = computed;
  const poolAt = leaves.findIndex((l) => GLOBAL_POOLS.has(l.layer.className));
  if (poolAt <= 0) {
    const last4d = [...leaves].reverse().find((l) => l.shape?.length === 4);
    if (!last4d) throw new ModelOptionError('--layer', '--layer: the model has no 4-D layer output; name one with --layer');
    return last4d;
  }
  const before = leaves[poolAt - 1];
  const classes = (outputShape ?? []).at(-1);
  const cfg = before.layer.config as { filters?: number; kernel_size?: number[] | number };
  const k = pair(cfg.kernel_size);
  const isClassMap = before.layer.className === 'Conv2D' && cfg.filters === classes && k[0] === 1 && k[1] === 1;
  return isClassMap && poolAt >= 2 ? leaves[poolAt - 2] : before;
}

/** The feature layer of a TF.js model, and what `info --layers` lists. */
export interface LayerChoice {
  readonly layer: string;
  readonly chosenBy: 'user' | 'auto';
  candidates(): LayerCandidate[];
}

export interface LayerContext {
  /** The user's --model, for messages. */
  readonly spec: string;
  /** Registry models: the global-pool node. */
  readonly embeddingNode?: string;
}

const notFound = (what: string, name: string, spec: string) =>
  new ModelOptionError('--layer', `--layer: no ${what} '${name}' in ${spec}; 'spp-extract info --layers' lists them`);

/**
 * The layer (layers model) or node (graph model) giving the feature map: `requested` when the
 * model has it, else the default rule. `topology` is the model.json's modelTopology with the input
 * made size-agnostic (readArtifacts), so candidate shapes read [null, null, null, C].
 */
export function chooseLayer(format: ModelFormat, topology: unknown, requested: string | undefined, ctx: LayerContext): LayerChoice {
  const chosenBy = requested ? 'user' : 'auto';
  if (format === 'graph') {
    const nodes = graphNodes(format, topology);
    const layer = requested ?? autoGraphNode(nodes, ctx.embeddingNode);
    if (!nodes.some((n) => n.name === layer)) throw notFound('node', layer, ctx.spec);
    const candidates = () =>
      nodes.filter((n) => n.op !== 'Const' && n.op !== 'Placeholder').map((n) => ({ name: n.name, kind: n.op, shape: null }));
    return { layer, chosenBy, candidates };
  }
  const root = parseLayersTopology(topology);
  const computed = kerasLeaves(root);
  const leaf = requested ? computed.leaves.find((l) => l.layer.name === requested) : autoKerasLeaf(root, computed);
  if (!leaf) throw notFound('layer', requested!, ctx.spec);
  const candidates = () =>
    computed.leaves.filter((l) => l.shape?.length === 4).map((l) => ({ name: l.layer.name, kind: l.layer.className, shape: l.shape }));
  return { layer: leaf.layer.name, chosenBy, candidates };
}

export interface RangeChoice { readonly inputRange: InputRange; readonly inputRangeSource: InputRangeSource }

/**
 * The pixel range of a TF.js model: the user's, else the registry's, else TF Hub image modules
 * (a `hub_input` node) [0, 1], other graph models and Keras layers models (the Keras MobileNets)
 * [−1, 1].
 */
export function pickInputRange(
  opts: { inputRange?: InputRange },
  format: ModelFormat,
  nodes: readonly GraphNode[],
  registryRange?: InputRange,
): RangeChoice {
  if (opts.inputRange) return { inputRange: opts.inputRange, inputRangeSource: 'user' };
  if (registryRange) return { inputRange: registryRange, inputRangeSource: 'registry' };
  // TF Hub image modules take [0, 1] and rescale inside (hub_input/Mul, Sub).
  if (format === 'graph') {
    return nodes.some((n) => n.name.includes('hub_input'))
      ? { inputRange: [0, 1], inputRangeSource: 'tfhub-graph' }
      : { inputRange: [-1, 1], inputRangeSource: 'graph-default' };
  }
  return { inputRange: [-1, 1], inputRangeSource: 'layers-default' };
}

/** A user's .onnx file: [0, 1] unless the user says otherwise (no registry, no guess). */
export function pickOnnxInputRange(opts: { inputRange?: InputRange }): RangeChoice {
  return { inputRange: opts.inputRange ?? [0, 1], inputRangeSource: opts.inputRange ? 'user' : 'graph-default' };
}

export function validateInputRange(range: readonly number[]): InputRange {
  if (range.length !== 2 || !range.every(Number.isFinite) || !(range[0] < range[1])) {
    throw new ModelOptionError('--input-range', `--input-range must be two numbers LOW,HIGH with LOW < HIGH, got '${range.join(',')}'`);
  }
  return [range[0], range[1]];
}
