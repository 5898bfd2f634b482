/**
 * TF.js model (graph or layers) → ONNX graph from the model input up to one layer/node.
 *
 * The ONNX graph takes NHWC float32 [N,H,W,C] (dynamic N/H/W) exactly like the tfjs path, transposes
 * to NCHW once, runs everything in NCHW (what ONNX Runtime's CPU kernels are fast at) and transposes
 * back to NHWC at the end, so a feature map reads the same as tfjs's.
 *
 * Conv → (Mul / Add / BiasAdd by a per-channel constant, BatchNormalization) chains are folded into
 * the conv's weights and bias when the conv output has no other consumer.
 *
 * This file is the public face only; the converter lives in ./convert/:
 *   weights.ts            tfjs weight shards → typed arrays (incl. dequantisation)
 *   builder.ts            ONNX graph builder (NCHW), pending convs, NHWC↔NCHW ends
 *   fold.ts               kernel layouts, folding affine ops into convs, batch norm
 *   activations.ts        activations shared by both converters
 *   tf-graph.ts           TF graph → ONNX (context, dispatch); tf-ops.ts / tf-conv.ts the op rules
 *   keras-convert.ts      Keras → ONNX (context, evaluation); keras-ops.ts the layer rules
 *   to-onnx.ts            convertToOnnx
 *   context.ts            what the op rules see of a conversion (interfaces: no rule ↔ converter cycle)
 * The Keras config parsing and shape inference it shares with the layer rules live in
 * ../keras/ (config.ts, shapes.ts); the default feature layer is rules.ts's, for both engines.
 *
 * Imported only when a model is converted (not on a cache hit): see onnx/backbone.ts.
 */
export { CONVERTER_VERSION, ONNX_INPUT, ONNX_OUTPUT, UnsupportedOpError } from './convert/common.js';
export { decodeWeights } from './convert/weights.js';
export { parseLayersTopology, type KerasLayer, type KerasModel } from '../keras/config.js';
export { kerasLeaves, type KerasLeaf } from '../keras/shapes.js';
export { autoKerasLeaf } from '../rules.js';
export { convertToOnnx } from './convert/to-onnx.js';
