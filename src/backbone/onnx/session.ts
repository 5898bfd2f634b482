/**
 * The parts of running an ONNX Runtime session that both the main thread and the inference
 * worker need, kept free of tfjs so the worker starts fast.
 */
import * as ort from 'onnxruntime-node';
import type { FeatureMap } from '../../spp/spp.js';

export type TensorLayout = 'nhwc' | 'nchw';

/** Pixels as decode.ts hands them over: 8-bit RGB, HWC. */
export interface RgbPixels { readonly data: Uint8Array; readonly width: number; readonly height: number }

export function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // Spinning workers burn the cores sharp needs for decoding ahead; measured no faster here.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

/**
 * uint8 RGB → float32 model input: x * (hi-lo)/255 + lo (as backbone.ts's preprocess), then the
 * optional (v - mean[c]) / std[c]; NHWC or NCHW.
 */
export function toInput(
  image: RgbPixels,
  [lo, hi]: readonly [number, number],
  layout: TensorLayout,
  mean?: readonly number[],
  std?: readonly number[],
): ort.Tensor {
  const { data, width, height } = image;
  if (data.length !== width * height * 3) {
    throw new Error(`image buffer has ${data.length} bytes, expected ${width}x${height}x3`);
  }
  const scale = (hi - lo) / 255;
  const f = new Float32Array(data.length);
  if (layout === 'nhwc' && !mean && !std) {
    for (let i = 0; i < data.length; i++) f[i] = data[i] * scale + lo;
    return new ort.Tensor('float32', f, [1, height, width, 3]);
  }
  const m = mean ?? [0, 0, 0];
  const s = std ?? [1, 1, 1];
  const plane = width * height;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = (data[p * 3 + c] * scale + lo - m[c]) / s[c];
      f[layout === 'nhwc' ? p * 3 + c : c * plane + p] = v;
    }
  }
  return new ort.Tensor('float32', f, layout === 'nhwc' ? [1, height, width, 3] : [1, 3, height, width]);
}

export function toFeatureMap(y: ort.Tensor, layout: TensorLayout): FeatureMap {
  if (y.dims.length !== 4) throw new Error(`--layer output has shape [${y.dims.join(',')}], expected a 4-D feature map`);
  if (y.type !== 'float32') throw new Error(`--layer output is ${y.type}, expected float32`);
  const src = y.data as Float32Array;
  if (layout === 'nhwc') {
    const [, height, width, channels] = y.dims;
    return { data: src, height, width, channels };
  }
  const [, channels, height, width] = y.dims;
  const plane = height * width;
  const data = new Float32Array(src.length);
  for (let c = 0; c < channels; c++) for (let p = 0; p < plane; p++) data[p * channels + c] = src[c * plane + p];
  return { data, height, width, channels };
}

/** What the inference worker needs to rebuild the main thread's runner. */
export interface WorkerConfig extends Omit<Runner, 'session'> {
  onnxPath: string;
  threads: number;
}

export interface Runner {
  session: ort.InferenceSession;
  inputName: string;
  outputName: string;
  layout: TensorLayout;
  range: readonly [number, number];
  mean?: readonly number[];
  std?: readonly number[];
}

export function makeFeatureMap(r: Runner) {
  return async (image: RgbPixels): Promise<FeatureMap> => {
    const x = toInput(image, r.range, r.layout, r.mean, r.std);
    const out = await r.session.run({ [r.inputName]: x }, [r.outputName]);
    return toFeatureMap(out[r.outputName] as ort.Tensor, r.layout);
  };
}

