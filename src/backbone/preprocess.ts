/**
 * The engine-independent tensor conversions: decoded pixels → the model's float32 input, and a
 * model output → the HWC feature map SPP reads. Both engines (tfjs and ONNX Runtime) use these, so
 * the same pixels give the same input bytes whichever runs. No model runtime here.
 */
import type { FeatureMap, InputRange, RgbPixels } from './contract.js';
import { ModelOptionError } from './errors.js';

/** Memory layout of an image tensor: channels last (TF.js, converted models) or first (torchvision). */
export type TensorLayout = 'nhwc' | 'nchw';

export interface InputSpec {
  /** Pixels are scaled as x·(hi−lo)/255 + lo, as `@tensorflow-models/mobilenet` does. */
  readonly range: InputRange;
  /** Default nhwc. */
  readonly layout?: TensorLayout;
  /** Per channel (R, G, B), applied after scaling: (v − mean[c]) / std[c]. */
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
}

/** A batch-of-one float32 tensor: its values and dims ([1, H, W, 3] or [1, 3, H, W]). */
export interface ModelInput {
  readonly data: Float32Array;
  readonly dims: [number, number, number, number];
}

/** uint8 RGB (HWC) → float32 in the model's range, then the optional mean/std; NHWC or NCHW. */
export function preprocess(image: RgbPixels, spec: InputSpec): ModelInput {
  const { data, width, height } = image;
  if (data.length !== width * height * 3) {
    throw new Error(`image buffer has ${data.length} bytes, expected ${width}x${height}x3`);
  }
  const [lo, hi] = spec.range;
  const layout = spec.layout ?? 'nhwc';
  const scale = (hi - lo) / 255;
  const f = new Float32Array(data.length);
  if (layout === 'nhwc' && !spec.mean && !spec.std) {
    for (let i = 0; i < data.length; i++) f[i] = data[i] * scale + lo;
    return { data: f, dims: [1, height, width, 3] };
  }
  const m = spec.mean ?? [0, 0, 0];
  const s = spec.std ?? [1, 1, 1];
  const plane = width * height;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = (data[p * 3 + c] * scale + lo - m[c]) / s[c];
      f[layout === 'nhwc' ? p * 3 + c : c * plane + p] = v;
    }
  }
  return { data: f, dims: layout === 'nhwc' ? [1, height, width, 3] : [1, 3, height, width] };
}

/** The feature layer's output must be a 4-D map (a pooled or flattened layer is not). */
export function checkFeatureDims(dims: readonly number[]): void {
  if (dims.length !== 4) {
    throw new ModelOptionError('--layer', `--layer output has shape [${dims.join(',')}], expected a 4-D feature map`);
  }
}

/** A batch-of-one 4-D output → the HWC feature map (NCHW outputs transposed). */
export function toFeatureMap(src: Float32Array, dims: readonly number[], layout: TensorLayout): FeatureMap {
  checkFeatureDims(dims);
  if (layout === 'nhwc') {
    const [, height, width, channels] = dims;
    return { data: src, height, width, channels };
  }
  const [, channels, height, width] = dims;
  const plane = height * width;
  const data = new Float32Array(src.length);
  for (let c = 0; c < channels; c++) for (let p = 0; p < plane; p++) data[p * channels + c] = src[c * plane + p];
  return { data, height, width, channels };
}
