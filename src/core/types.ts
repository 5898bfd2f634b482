/**
 * Types every layer shares, at the bottom of the import graph: no runtime, no imports of code.
 */
/** A single feature map in HWC layout (NHWC with batch 1), float32: what a backbone gives SPP. */
export interface FeatureMap {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}

/** Decoded pixels as the decoder hands them to a backbone: 8-bit RGB, interleaved, row-major (HWC). */
export interface RgbPixels {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** A TF.js model.json's kind: a GraphDef (`graph-model`) or a Keras config (`layers-model`). */
export type ModelFormat = 'graph' | 'layers';
