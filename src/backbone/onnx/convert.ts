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
 *   keras-model.ts        Keras config parsing, tfjs layer order
 *   keras-shapes.ts       Keras shape inference, leaf layers
 *   keras-default-layer.ts the default feature layer (same rule as backbone.ts's autoLayersLeaf)
 *   keras-convert.ts      Keras → ONNX (context, evaluation); keras-ops.ts the layer rules
 *   to-onnx.ts            convertToOnnx
 */
export { CONVERTER_VERSION, ONNX_INPUT, ONNX_OUTPUT, UnsupportedOpError } from './convert/common.js';
export { decodeWeights } from './convert/weights.js';
export { parseLayersTopology, type KerasLayer, type KerasModel } from './convert/keras-model.js';
export { kerasLeaves, type KerasLeaf } from './convert/keras-shapes.js';
export { autoKerasLeaf } from './convert/keras-default-layer.js';
export { convertToOnnx } from './convert/to-onnx.js';
