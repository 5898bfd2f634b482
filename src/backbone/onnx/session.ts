/**
 * An ONNX Runtime session made ready to give feature maps: created, its input layout and feature
 * output resolved, and probed once. The inference worker runs this (the default: one session per
 * load, in the worker); the main thread only when asked to keep inference on itself.
 *
 * This is the only main-side module that imports onnxruntime-node, and it is imported dynamically.
 */
import { createRequire } from 'node:module';
import type * as Ort from 'onnxruntime-node';
import type { FeatureMap, InputRange, LayerCandidate, ProbeResult, RgbPixels } from '../contract.js';
import { ModelOptionError } from '../errors.js';
import { preprocess, toFeatureMap, type TensorLayout } from '../preprocess.js';

// Loaded with require: an ES module import of this CommonJS package goes through Node's ESM-to-CJS
// translation, ~12 ms more of each worker's start-up (node -e, 7 runs).
const ort = createRequire(import.meta.url)('onnxruntime-node') as typeof Ort;

export type { RgbPixels, TensorLayout };

// With $HOME unwritable (docker run --user), ORT's telemetry falls back to writing ':memory:.ses'
// into the working directory and logs "Failed to persist telemetry device ID" on stderr. Read by
// ORT when its environment is created (first session). For the worker, worker-client.ts sets it on
// the main thread before the worker starts; this covers sessions on the main thread. A user's
// value is kept.
process.env.ORT_DISABLE_TELEMETRY ??= '1';
// ORT prints its own coloured log lines on stderr (warnings, and an error line for every failed
// run) beside ours; whatever fails reaches us as an exception, and our one line says it. So only
// 'fatal' is left to ORT, for the environment (this module's ORT instance creates the process's
// first session, so its level is the one ORT keeps) and for each session (LOG_SEVERITY_FATAL).
if (ort.env.logLevel === 'warning') ort.env.logLevel = 'fatal';
const LOG_SEVERITY_FATAL = 4;

export function sessionOptions(threads: number): Ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: LOG_SEVERITY_FATAL,
    // Spinning workers burn the cores sharp needs for decoding ahead; measured no faster here.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

/**
 * Creates ONNX Runtime's environment (thread pools, kernel registry, logging: ~20 ms, once per
 * process) with a one-node model, so the inference worker pays it while the main thread is still
 * reading the model rather than after.
 */
export async function warmUp(): Promise<void> {
  const { encodeModel } = await import('./proto.js');
  const model = encodeModel({
    graph: {
      name: 'warm-up',
      nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'], name: 'identity' }],
      initializers: [],
      inputs: [{ name: 'x', elemType: 1, shape: [1] }],
      outputs: [{ name: 'y', elemType: 1 }],
    },
  });
  const session = await ort.InferenceSession.create(model, sessionOptions(1));
  await session.release();
}

/** What opening a model needs to know besides the model itself (plain data: it crosses to the worker). */
export interface OpenRequest {
  threads: number;
  range: InputRange;
  mean?: readonly number[];
  std?: readonly number[];
  /** The image input's layout; undefined: read from its declared shape ([N,3,H,W] → nchw, [N,H,W,3] → nhwc), else nchw. */
  layout?: TensorLayout;
  /** The graph output to read; undefined: the first. */
  output?: string;
  /** The model as the user named it, for messages. */
  label: string;
  /** This very file's probe, from an earlier load: the probe is skipped (the first image proves the session). */
  knownProbe?: ProbeResult;
}

/** What the session turned out to be (plain data, sent back from the worker). */
export interface OpenedModel {
  inputName: string;
  outputName: string;
  layout: TensorLayout;
  /** From the probe. */
  channels: number;
  probe: ProbeResult;
  /** The graph's outputs, which `info --layers` lists for a user's .onnx. */
  outputs: LayerCandidate[];
}

export interface Runner {
  session: Ort.InferenceSession;
  /** Its intra-op threads. */
  threads: number;
  inputName: string;
  outputName: string;
  layout: TensorLayout;
  range: InputRange;
  mean?: readonly number[];
  std?: readonly number[];
}

/** Input buffers up to this many floats are kept for the next image (64 MiB: any photo at the default policy). */
const REUSE_INPUT_MAX = 16 * 2 ** 20;

export function makeFeatureMap(r: Runner): (image: RgbPixels) => Promise<FeatureMap> {
  // Input tensors are written into kept buffers: allocating and zeroing ~1 MB per image cost
  // ~0.2 ms, a tenth of a small backbone's run. One per call in flight, so overlapping calls never share.
  const spare: Float32Array[] = [];
  return async (image) => {
    const need = image.width * image.height * 3;
    let buffer = spare.pop();
    if (!buffer || buffer.length < need) buffer = need <= REUSE_INPUT_MAX ? new Float32Array(need) : undefined;
    const x = preprocess(image, { range: r.range, layout: r.layout, mean: r.mean, std: r.std }, buffer);
    let out: Ort.InferenceSession.OnnxValueMapType;
    try {
      out = await r.session.run({ [r.inputName]: new ort.Tensor('float32', x.data, x.dims) }, [r.outputName]);
    } finally {
      if (buffer) spare.push(buffer);
    }
    const y = out[r.outputName] as Ort.Tensor;
    if (y.dims.length === 4 && y.type !== 'float32') throw new ModelOptionError('--layer', `--layer output is ${y.type}, expected float32`);
    return toFeatureMap(y.data as Float32Array, y.dims, r.layout);
  };
}

type Dim = number | string | undefined;

/** Probe size: the input's fixed H and W when it declares them, else 224x224. */
function probeImage(inShape: readonly Dim[], layout: TensorLayout): RgbPixels {
  const [hAt, wAt] = layout === 'nhwc' ? [1, 2] : [2, 3];
  const fixed = (d: Dim) => (typeof d === 'number' && d > 0 ? d : 224);
  const [height, width] = [fixed(inShape[hAt]), fixed(inShape[wAt])];
  return { data: new Uint8Array(height * width * 3), width, height };
}

/**
 * A feature map with a 0 dimension (0 channels, 0 height) gives every image an empty or failing
 * descriptor: refused at load, naming the model, the output and its shape, declared or produced.
 */
function checkNoZeroDim(req: OpenRequest, output: string, shape: readonly Dim[], how: 'declares' | 'gave the probe'): void {
  if (!shape.some((d) => d === 0)) return;
  const dims = shape.map((d) => (typeof d === 'number' && d >= 0 ? String(d) : (d ?? '?'))).join(',');
  throw new ModelOptionError('--layer', `--model ${req.label}: output '${output}' ${how} shape [${dims}]: a feature map needs every dimension of at least 1`);
}

async function runProbe(runner: Runner, inShape: readonly Dim[], req: OpenRequest): Promise<ProbeResult> {
  const image = probeImage(inShape, runner.layout);
  const map = await makeFeatureMap(runner)(image);
  const { height, width, channels } = map;
  checkNoZeroDim(req, runner.outputName, runner.layout === 'nhwc' ? [1, height, width, channels] : [1, channels, height, width], 'gave the probe');
  return { inputHeight: image.height, inputWidth: image.width, height, width, channels };
}

function outputsOf(session: Ort.InferenceSession): LayerCandidate[] {
  return session.outputMetadata.map((m) => ({
    name: m.name,
    kind: 'onnx-output',
    shape: m.isTensor ? m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : null)) : null,
  }));
}

/** An ONNX Runtime session on the CPU with this many intra-op threads. */
export function createSession(source: string | Uint8Array, threads: number): Promise<Ort.InferenceSession> {
  const options = sessionOptions(threads);
  return typeof source === 'string' ? ort.InferenceSession.create(source, options) : ort.InferenceSession.create(source, options);
}

/**
 * Creates the session (from a file or the model's bytes), resolves the input layout and the feature
 * output, and runs one probe: it proves the cut runs and tells the channel count. `created`: a
 * session already being created from `source` (a preload).
 */
export async function openSession(
  source: string | Uint8Array, req: OpenRequest, created?: Promise<Ort.InferenceSession>,
): Promise<{ runner: Runner; opened: OpenedModel }> {
  const session = await (created ?? createSession(source, req.threads));
  try {
    const meta = session.inputMetadata[0];
    const inShape: readonly Dim[] = meta && meta.isTensor ? meta.shape : [];
    const layout: TensorLayout = req.layout ?? (inShape.length === 4 && inShape[3] === 3 && inShape[1] !== 3 ? 'nhwc' : 'nchw');
    const outputName = req.output ?? session.outputNames[0];
    if (!session.outputNames.includes(outputName)) {
      throw new ModelOptionError('--layer', `--layer: '${outputName}' is not an output of ${req.label} (outputs: ${session.outputNames.join(', ')})`);
    }
    const declared = session.outputMetadata.find((m) => m.name === outputName);
    if (declared?.isTensor) checkNoZeroDim(req, outputName, declared.shape, 'declares');
    const runner: Runner = { session, threads: req.threads, inputName: session.inputNames[0], outputName, layout, range: req.range, mean: req.mean, std: req.std };
    const probe = req.knownProbe ?? (await runProbe(runner, inShape, req));
    return { runner, opened: { inputName: runner.inputName, outputName, layout, channels: probe.channels, probe, outputs: outputsOf(session) } };
  } catch (err) {
    await session.release().catch(() => undefined);
    throw err;
  }
}
