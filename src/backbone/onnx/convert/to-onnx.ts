/** The converter's entry point: picks the TF-graph or the Keras converter by model format. */
import type { LoadedArtifacts } from '../../artifacts.js';
import type { ConvertResult } from './common.js';
import { convertLayers } from './keras-convert.js';
import { convertGraph } from './tf-graph.js';

/**
 * An ONNX model computing the feature map at `layer` (graph node name, or layers-model layer name,
 * nested models included), NHWC in and out.
 */
export function convertToOnnx(loaded: LoadedArtifacts, layer: string): ConvertResult {
  return loaded.format === 'graph' ? convertGraph(loaded, layer) : convertLayers(loaded, layer);
}
