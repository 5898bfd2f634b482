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

/**
 * The float each byte value becomes, per channel (R, G, B: 3×256 entries). Each entry is computed
 * by the very expression a per-pixel loop would use, so a lookup gives the same float32 bits; it
 * replaces a multiply-add and a double→float rounding per byte by one load.
 */
function valueTable(spec: InputSpec): Float32Array {
  const [lo, hi] = spec.range;
  const scale = (hi - lo) / 255;
  const { mean, std } = spec;
  const value = mean || std
    ? (v: number, c: number) => (v * scale + lo - (mean?.[c] ?? 0)) / (std?.[c] ?? 1)
    : (v: number) => v * scale + lo;
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) table[c * 256 + v] = value(v, c);
  return table;
}

/**
 * uint8 RGB (HWC) → float32 in the model's range, then the optional mean/std; NHWC or NCHW.
 * `into`: written in place of a new array (its first width·height·3 values) when it is long enough.
 */
export function preprocess(image: RgbPixels, spec: InputSpec, into?: Float32Array): ModelInput {
  const { data, width, height } = image;
  if (data.length !== width * height * 3) {
    throw new Error(`image buffer has ${data.length} bytes, expected ${width}x${height}x3`);
  }
  const layout = spec.layout ?? 'nhwc';
  const t = valueTable(spec);
  const f = into && into.length >= data.length ? into.subarray(0, data.length) : new Float32Array(data.length);
  const plane = width * height;
  if (layout === 'nhwc') {
    for (let i = 0; i < data.length; i += 3) {
      f[i] = t[data[i]];
      f[i + 1] = t[256 + data[i + 1]];
      f[i + 2] = t[512 + data[i + 2]];
    }
    return { data: f, dims: [1, height, width, 3] };
  }
  for (let p = 0, i = 0; p < plane; p++, i += 3) {
    f[p] = t[data[i]];
    f[plane + p] = t[256 + data[i + 1]];
    f[2 * plane + p] = t[512 + data[i + 2]];
  }
  return { data: f, dims: [1, 3, height, width] };
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
