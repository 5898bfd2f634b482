/**
 * The Backbone on tfjs (tfjs-node, else wasm). tfjs itself is imported when loadBackbone runs, not
 * when this module is: the contract types and the layer / input-range rules it re-exports below
 * live in runtime-free modules.
 */
import type * as TF from '@tensorflow/tfjs';
import { readArtifacts } from '../artifacts.js';
import type { Backbone, BackboneInfo, BackboneOptions, FeatureMap, InputRange, RgbPixels } from '../contract.js';
import { checkFeatureDims, preprocess, toFeatureMap } from '../preprocess.js';
import { DEFAULT_MODEL_ID } from '../registry.js';
import { chooseLayer, graphNodes, pickInputRange, validateInputRange } from '../rules.js';
import { defaultCacheDir, resolveModel } from '../source.js';
import { initBackend, loadTfjs, type Tfjs } from './backend.js';

// The contract and the rules, where they were exported from before they moved out of this module.
export type { Backbone, BackboneInfo, BackboneOptions, LayerCandidate, RgbImage } from '../contract.js';
export { autoGraphNode, pickInputRange, validateInputRange } from '../rules.js';

/** The model cut at the feature layer: one NHWC batch in, the feature tensor out. */
interface Cut {
  run(x: TF.Tensor4D): TF.Tensor;
  dispose(): void;
}

async function graphCut(tf: Tfjs, artifacts: TF.io.ModelArtifacts, layer: string): Promise<Cut> {
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  const inputName = model.inputs[0].name;
  return { run: (x) => model.execute({ [inputName]: x }, layer) as TF.Tensor, dispose: () => model.dispose() };
}

/** Leaf layers in model.layers order, nested models flattened, each with the model that holds it. */
function leavesOf(tf: Tfjs, model: TF.LayersModel, out: { layer: TF.layers.Layer; container: TF.LayersModel }[] = []) {
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) leavesOf(tf, layer, out);
    else out.push({ layer, container: model });
  }
  return out;
}

async function layersCut(tf: Tfjs, artifacts: TF.io.ModelArtifacts, layer: string): Promise<Cut> {
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const leaf = leavesOf(tf, model).find((l) => l.layer.name === layer);
  if (!leaf) {
    model.dispose();
    throw new Error(`tfjs: no layer '${layer}' in the loaded model`);
  }
  // The chosen layer's own container feeds it (a nested backbone takes the image directly).
  const features = tf.model({ inputs: leaf.container.inputs, outputs: leaf.layer.output as TF.SymbolicTensor });
  return { run: (x) => features.predict(x) as TF.Tensor, dispose: () => model.dispose() };
}

function featureMapOf(tf: Tfjs, cut: Cut, range: InputRange) {
  return async (image: RgbPixels): Promise<FeatureMap> => {
    const input = preprocess(image, { range });
    const x = tf.tensor4d(input.data, input.dims);
    let y: TF.Tensor | undefined;
    try {
      y = cut.run(x);
      checkFeatureDims(y.shape);
      return toFeatureMap((await y.data()) as Float32Array, y.shape, 'nhwc');
    } finally {
      x.dispose();
      y?.dispose();
    }
  };
}

export async function loadBackbone(opts: BackboneOptions = {}): Promise<Backbone> {
  if (opts.inputRange) validateInputRange(opts.inputRange);
  const backend = await initBackend(opts.backend ?? 'auto');
  const tf = await loadTfjs();
  const source = await resolveModel(opts.model ?? DEFAULT_MODEL_ID, opts.cacheDir ?? defaultCacheDir());
  const { format, artifacts, sha256 } = await readArtifacts(source.modelJsonPath);
  const range = pickInputRange(opts, format, graphNodes(format, artifacts.modelTopology), source.registry?.inputRange);
  const choice = chooseLayer(format, artifacts.modelTopology, opts.layer, { spec: source.spec, embeddingNode: source.registry?.embeddingNode });
  const cut = format === 'graph' ? await graphCut(tf, artifacts, choice.layer) : await layersCut(tf, artifacts, choice.layer);
  const featureMap = featureMapOf(tf, cut, range.inputRange);

  // One probe at 224x224 proves the cut works and tells the channel count.
  let map: FeatureMap;
  try {
    map = await featureMap({ data: new Uint8Array(224 * 224 * 3), width: 224, height: 224 });
  } catch (err) {
    cut.dispose();
    throw err;
  }
  const info: BackboneInfo = {
    backend,
    model: source.spec,
    modelSha256: sha256,
    modelJsonPath: source.modelJsonPath,
    format,
    layer: choice.layer,
    layerChosenBy: choice.chosenBy,
    channels: map.channels,
    ...range,
  };
  const probe = { inputHeight: 224, inputWidth: 224, height: map.height, width: map.width, channels: map.channels };
  return { info, probe, featureMap, candidateLayers: choice.candidates, dispose: () => cut.dispose() };
}
