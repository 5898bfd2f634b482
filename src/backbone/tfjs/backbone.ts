import { tf, initBackend, type BackendChoice } from './backend.js';
import type { FeatureMap } from '../../spp/spp.js';
import { readArtifacts, type ModelFormat } from '../artifacts.js';
import { resolveModel, defaultCacheDir } from '../source.js';
import { DEFAULT_MODEL_ID } from '../registry.js';

export interface BackboneOptions {
  /** Registry id, local directory, model.json path or URL. */
  model?: string;
  /** Layer (layers models) or node (graph models) whose output is the feature map; default: the last conv map. */
  layer?: string;
  /** Range the model expects pixels in; default from the registry, else a per-format guess (see info). */
  inputRange?: readonly [number, number];
  backend?: BackendChoice;
  cacheDir?: string;
}

export interface BackboneInfo {
  readonly backend: string;
  readonly model: string;
  readonly modelJsonPath: string;
  readonly format: ModelFormat;
  readonly layer: string;
  readonly layerChosenBy: 'user' | 'auto';
  readonly channels: number;
  readonly inputRange: readonly [number, number];
  readonly inputRangeSource: 'user' | 'registry' | 'tfhub-graph' | 'layers-default' | 'graph-default';
}

export interface LayerCandidate { readonly name: string; readonly kind: string; readonly shape: readonly (number | null)[] | null }

/** Pixels as decode.ts hands them over: 8-bit RGB, HWC. */
export interface RgbImage { readonly data: Uint8Array; readonly width: number; readonly height: number }

export interface Backbone {
  readonly info: BackboneInfo;
  featureMap(image: RgbImage): Promise<FeatureMap>;
  candidateLayers(): LayerCandidate[];
  /** Frees the model; ONNX backbones resolve once their worker thread has exited. */
  dispose(): void | Promise<void>;
}

const GLOBAL_POOLS = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten']);
type Leaf = { layer: tf.layers.Layer; container: tf.LayersModel };

function leavesOf(model: tf.LayersModel, out: Leaf[] = []): Leaf[] {
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) leavesOf(layer, out);
    else out.push({ layer, container: model });
  }
  return out;
}

function outputShape(layer: tf.layers.Layer): (number | null)[] | null {
  const s = layer.outputShape;
  return Array.isArray(s) && !Array.isArray(s[0]) ? (s as (number | null)[]) : null;
}

/**
 * The last conv feature map of a layers model: the input of the first global pooling. A 1x1
 * conv right before it with one filter per output class is a classifier head (Darknet, NiN):
 * then the map before that conv is the feature map.
 */
function autoLayersLeaf(model: tf.LayersModel, leaves: Leaf[]): Leaf {
  const poolAt = leaves.findIndex((l) => GLOBAL_POOLS.has(l.layer.getClassName()));
  if (poolAt <= 0) {
    const last4d = [...leaves].reverse().find((l) => outputShape(l.layer)?.length === 4);
    if (!last4d) throw new Error('--layer: the model has no 4-D layer output; name one with --layer');
    return last4d;
  }
  const before = leaves[poolAt - 1];
  const classes = (model.outputs[0]?.shape ?? []).at(-1);
  const cfg = before.layer.getConfig() as { filters?: number; kernelSize?: number[] | number };
  const k = Array.isArray(cfg.kernelSize) ? cfg.kernelSize : [cfg.kernelSize, cfg.kernelSize];
  const isClassMap = before.layer.getClassName() === 'Conv2D' && cfg.filters === classes && k[0] === 1 && k[1] === 1;
  return isClassMap && poolAt >= 2 ? leaves[poolAt - 2] : before;
}

type GraphNode = { name: string; op: string; input?: string[] };
const cleanInput = (name: string) => name.replace(/^\^/, '').replace(/:\d+$/, '');

export function autoGraphNode(nodes: GraphNode[], embeddingNode?: string): string {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const pool =
    (embeddingNode && byName.get(embeddingNode)) ||
    nodes.find((n) => n.op === 'Mean') ||
    [...nodes].reverse().find((n) => n.op === 'AvgPool');
  const input = pool?.input?.[0];
  if (!input) throw new Error('--layer: no global-pool node found in this graph model; name the feature node with --layer');
  return cleanInput(input);
}

export function pickInputRange(
  opts: BackboneOptions,
  format: ModelFormat,
  nodes: GraphNode[],
  registryRange?: readonly [number, number],
): Pick<BackboneInfo, 'inputRange' | 'inputRangeSource'> {
  if (opts.inputRange) return { inputRange: opts.inputRange, inputRangeSource: 'user' };
  if (registryRange) return { inputRange: registryRange, inputRangeSource: 'registry' };
  // TF Hub image modules take [0, 1] and rescale inside (hub_input/Mul, Sub).
  if (format === 'graph') {
    return nodes.some((n) => n.name.includes('hub_input'))
      ? { inputRange: [0, 1], inputRangeSource: 'tfhub-graph' }
      : { inputRange: [-1, 1], inputRangeSource: 'graph-default' };
  }
  // Keras-applications MobileNets (the usual layers models) take [-1, 1].
  return { inputRange: [-1, 1], inputRangeSource: 'layers-default' };
}

export function validateInputRange(range: readonly number[]): readonly [number, number] {
  if (range.length !== 2 || !range.every(Number.isFinite) || !(range[0] < range[1])) {
    throw new Error(`--input-range must be two numbers LOW,HIGH with LOW < HIGH, got '${range.join(',')}'`);
  }
  return [range[0], range[1]];
}

/** uint8 RGB → float32 in the model's range, as `@tensorflow-models/mobilenet` does (x * (hi-lo)/255 + lo). */
export function preprocess(image: RgbImage, [lo, hi]: readonly [number, number]): tf.Tensor4D {
  const { data, width, height } = image;
  if (data.length !== width * height * 3) {
    throw new Error(`image buffer has ${data.length} bytes, expected ${width}x${height}x3`);
  }
  const scale = (hi - lo) / 255;
  const f = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) f[i] = data[i] * scale + lo;
  return tf.tensor4d(f, [1, height, width, 3]);
}

async function readMap(y: tf.Tensor): Promise<FeatureMap> {
  if (y.rank !== 4) throw new Error(`--layer output has shape [${y.shape.join(',')}], expected a 4-D feature map`);
  const [, height, width, channels] = y.shape as number[];
  const data = (await y.data()) as Float32Array;
  return { data, height, width, channels };
}

export async function loadBackbone(opts: BackboneOptions = {}): Promise<Backbone> {
  if (opts.inputRange) validateInputRange(opts.inputRange);
  const backend = await initBackend(opts.backend ?? 'auto');
  const source = await resolveModel(opts.model ?? DEFAULT_MODEL_ID, opts.cacheDir ?? defaultCacheDir());
  const { format, artifacts } = await readArtifacts(source.modelJsonPath);
  const nodes = format === 'graph' ? ((artifacts.modelTopology as { node: GraphNode[] }).node ?? []) : [];
  const range = pickInputRange(opts, format, nodes, source.registry?.inputRange);

  let run: (x: tf.Tensor4D) => tf.Tensor;
  let candidates: () => LayerCandidate[];
  let layer: string;
  let release: () => void;

  if (format === 'graph') {
    const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
    layer = opts.layer ?? autoGraphNode(nodes, source.registry?.embeddingNode);
    if (!nodes.some((n) => n.name === layer)) {
      throw new Error(`--layer: no node '${layer}' in ${source.spec}; 'spp-extract info --layers' lists them`);
    }
    const inputName = model.inputs[0].name;
    const out = layer;
    run = (x) => model.execute({ [inputName]: x }, out) as tf.Tensor;
    candidates = () =>
      nodes.filter((n) => n.op !== 'Const' && n.op !== 'Placeholder').map((n) => ({ name: n.name, kind: n.op, shape: null }));
    release = () => model.dispose();
  } else {
    const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    const leaves = leavesOf(model);
    const leaf = opts.layer ? leaves.find((l) => l.layer.name === opts.layer) : autoLayersLeaf(model, leaves);
    if (!leaf) throw new Error(`--layer: no layer '${opts.layer}' in ${source.spec}; 'spp-extract info --layers' lists them`);
    layer = leaf.layer.name;
    const features = tf.model({ inputs: leaf.container.inputs, outputs: leaf.layer.output as tf.SymbolicTensor });
    run = (x) => features.predict(x) as tf.Tensor;
    candidates = () =>
      leaves
        .filter((l) => outputShape(l.layer)?.length === 4)
        .map((l) => ({ name: l.layer.name, kind: l.layer.getClassName(), shape: outputShape(l.layer) }));
    release = () => model.dispose();
  }

  const featureMap = async (image: RgbImage): Promise<FeatureMap> => {
    const x = preprocess(image, range.inputRange);
    let y: tf.Tensor | undefined;
    try {
      y = run(x);
      return await readMap(y);
    } finally {
      x.dispose();
      y?.dispose();
    }
  };

  // One probe at 224x224 proves the cut works and tells the channel count.
  const probe = await featureMap({ data: new Uint8Array(224 * 224 * 3), width: 224, height: 224 });
  const info: BackboneInfo = {
    backend,
    model: source.spec,
    modelJsonPath: source.modelJsonPath,
    format,
    layer,
    layerChosenBy: opts.layer ? 'user' : 'auto',
    channels: probe.channels,
    ...range,
  };
  return { info, featureMap, candidateLayers: candidates, dispose: release };
}
