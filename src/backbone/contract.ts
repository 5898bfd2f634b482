/**
 * The backbone contract: what every engine (tfjs, ONNX Runtime) hands the pipeline. Types only —
 * importing this module loads no model runtime.
 */
import type { FeatureMap, ModelFormat, RgbPixels } from '../core/types.js';

export type { FeatureMap, ModelFormat, RgbPixels };

/** `[lo, hi]`: pixels are scaled as x·(hi−lo)/255 + lo. */
export type InputRange = readonly [number, number];

/** Where the input range came from (`info` shows it). */
export type InputRangeSource = 'user' | 'registry' | 'tfhub-graph' | 'layers-default' | 'graph-default';

/** tfjs backends: `auto` = tfjs-node when it loads, else wasm. */
export type BackendChoice = 'auto' | 'node' | 'wasm' | 'cpu';

export interface BackboneOptions {
  /** Registry id, local directory, model.json path or URL (or a local .onnx file, ONNX engine). */
  model?: string;
  /** Layer (layers models) or node (graph models) whose output is the feature map; default: the last conv map. */
  layer?: string;
  /** Range the model expects pixels in; default from the registry, else a per-format guess (see info). */
  inputRange?: InputRange;
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
  readonly inputRange: InputRange;
  readonly inputRangeSource: InputRangeSource;
  /**
   * The model's content identity, SHA-256 hex: of a .onnx file's bytes; of a TF.js model's
   * model.json then its weight shards in manifest order. A model re-exported under the same path has
   * another one.
   */
  readonly modelSha256: string;
  /** ONNX engine: the image input's layout (converted models: nhwc) and, for a user's .onnx, its per-channel normalisation. */
  readonly inputLayout?: 'nhwc' | 'nchw';
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
}

/** One entry of `info --layers`: a layer / node / graph output that could be the feature map. */
export interface LayerCandidate { readonly name: string; readonly kind: string; readonly shape: readonly (number | null)[] | null }

/** The probe a load runs (one black image through the cut): the input size and the map it gave. */
export interface ProbeResult {
  readonly inputHeight: number;
  readonly inputWidth: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

export interface BackboneHint { waitedOn?: boolean }

export interface Backbone {
  readonly info: BackboneInfo;
  /** The load's probe (224x224 for TF.js models), so callers need not run another at that size. */
  readonly probe?: ProbeResult;
  /**
   * The feature map of one image. `hint.waitedOn`: the caller's decoders were ahead, so the run is
   * waiting on the backbone; an engine may use that to run more sessions at once. Same result either way.
   */
  featureMap(image: RgbPixels, hint?: BackboneHint): Promise<FeatureMap>;
  candidateLayers(): LayerCandidate[];
  /** Frees the model; ONNX backbones resolve once their worker thread has exited. */
  dispose(): void | Promise<void>;
}

/** @deprecated the old name of RgbPixels (was in tfjs/backbone.ts). */
export type RgbImage = RgbPixels;
