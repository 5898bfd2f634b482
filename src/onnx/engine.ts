/**
 * The Backbone on ONNX Runtime (CPU): a TF.js model is converted once to ONNX (cached on disk), or a
 * user's own .onnx is run as is. Same model resolution, layer choice and input range as the tfjs
 * path (loadBackbone), so feature maps are interchangeable.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { FeatureMap } from '../spp.js';
import { readArtifacts } from '../model/artifacts.js';
import {
  autoGraphNode,
  pickInputRange,
  validateInputRange,
  type Backbone,
  type BackboneInfo,
  type BackboneOptions,
  type LayerCandidate,
  type RgbImage,
} from '../model/backbone.js';
import { DEFAULT_MODEL_ID } from '../model/registry.js';
import { defaultCacheDir, resolveModel } from '../model/source.js';
import { makeFeatureMap, sessionOptions, type Runner, type TensorLayout } from './session.js';
import { startInferenceWorker } from './worker-client.js';
import { CONVERTER_VERSION, autoKerasLeaf, convertToOnnx, kerasLeaves, parseLayersTopology } from './convert.js';


export type { TensorLayout } from './session.js';

export interface OnnxBackboneOptions extends BackboneOptions {
  /** Run inference in a worker thread (default true) so decoding, SPP and writing overlap it. */
  worker?: boolean;
  /** ONNX Runtime intra-op threads; default cores - 1. */
  threads?: number;
  /**
   * Only for a user's own `.onnx` model: layout of its image input and of the feature output.
   * Default: read from the input's declared shape ([N,3,H,W] → nchw, [N,H,W,3] → nhwc), else nchw.
   * Converted TF.js models are always NHWC in and out.
   */
  inputLayout?: TensorLayout;
  /**
   * Per-channel normalisation, applied after scaling pixels to `inputRange` (default [0, 1] for a
   * user .onnx): v = (x * (hi - lo) / 255 + lo - mean[c]) / std[c]. torchvision/timm ImageNet
   * exports expect mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225] on [0, 1] pixels.
   * One value applies to all three channels.
   */
  mean?: readonly number[];
  std?: readonly number[];
}

export interface OnnxBackboneInfo extends BackboneInfo {
  /** The .onnx file the session runs: the cached conversion, or the user's file. */
  readonly onnxPath: string;
  readonly onnxSource: 'converted' | 'user';
  /** Converted models: whether the .onnx came from the cache (false: converted by this load). */
  readonly cacheHit: boolean;
  readonly threads: number;
  readonly inputLayout: TensorLayout;
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
}

export interface OnnxBackbone extends Backbone {
  readonly info: OnnxBackboneInfo;
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false);
}

/** Default: leave one core to the sharp decoders that run ahead of the model (1 thread on 2 cores). */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

function checkThreads(threads: number | undefined): number {
  const n = threads ?? defaultThreads();
  if (!Number.isInteger(n) || n < 1) throw new Error(`--threads must be a positive integer, got '${threads}'`);
  return n;
}

function perChannel(name: string, v: readonly number[] | undefined): [number, number, number] | undefined {
  if (v === undefined) return undefined;
  if (!(v.length === 1 || v.length === 3) || !v.every(Number.isFinite)) {
    throw new Error(`--${name} must be 1 or 3 numbers, got '${v.join(',')}'`);
  }
  return v.length === 1 ? [v[0], v[0], v[0]] : [v[0], v[1], v[2]];
}

function backendName(threads: number): string {
  return `onnxruntime-node (cpu, ${threads} thread${threads === 1 ? '' : 's'})`;
}

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function isOnnxSpec(spec: string): boolean {
  return /\.onnx$/i.test(spec) && !/^https?:\/\//i.test(spec);
}

/**
 * Loads a backbone on ONNX Runtime. `opts.model` is anything loadBackbone accepts (converted to
 * ONNX, cached under `<cacheDir>/onnx/`), or a path to a `.onnx` file (then `--layer` names one of
 * its graph outputs, default the first).
 */
export async function loadOnnxBackbone(opts: OnnxBackboneOptions = {}): Promise<OnnxBackbone> {
  if (opts.inputRange) validateInputRange(opts.inputRange);
  const threads = checkThreads(opts.threads);
  const spec = opts.model ?? DEFAULT_MODEL_ID;
  return isOnnxSpec(spec) ? loadUserOnnx(spec, opts, threads) : loadConverted(spec, opts, threads);
}

async function loadConverted(spec: string, opts: OnnxBackboneOptions, threads: number): Promise<OnnxBackbone> {
  if (opts.mean || opts.std || opts.inputLayout === 'nchw') {
    throw new Error('--mean/--std/--input-layout apply to a .onnx model only; TF.js models take --input-range');
  }
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const source = await resolveModel(spec, cacheDir);
  const loaded = await readArtifacts(source.modelJsonPath);
  const { format } = loaded;
  type Node = { name: string; op: string; input?: string[] };
  const nodes = format === 'graph' ? ((loaded.artifacts.modelTopology as { node?: Node[] }).node ?? []) : [];
  const range = pickInputRange(opts, format, nodes, source.registry?.inputRange);

  // Same layer choice as loadBackbone; the layers-model rule runs on the JSON config (kerasLeaves).
  let layer: string;
  let candidates: () => LayerCandidate[];
  if (format === 'graph') {
    layer = opts.layer ?? autoGraphNode(nodes, source.registry?.embeddingNode);
    if (!nodes.some((n) => n.name === layer)) {
      throw new Error(`--layer: no node '${layer}' in ${source.spec}; 'spp-extract info --layers' lists them`);
    }
    candidates = () =>
      nodes.filter((n) => n.op !== 'Const' && n.op !== 'Placeholder').map((n) => ({ name: n.name, kind: n.op, shape: null }));
  } else {
    const root = parseLayersTopology(loaded.artifacts.modelTopology);
    const { leaves } = kerasLeaves(root);
    const leaf = opts.layer ? leaves.find((l) => l.layer.name === opts.layer) : autoKerasLeaf(root);
    if (!leaf) throw new Error(`--layer: no layer '${opts.layer}' in ${source.spec}; 'spp-extract info --layers' lists them`);
    layer = leaf.layer.name;
    candidates = () =>
      leaves.filter((l) => l.shape?.length === 4).map((l) => ({ name: l.layer.name, kind: l.layer.className, shape: l.shape }));
  }

  // Cache key: the exact model bytes, the cut and the converter's version.
  const hash = createHash('sha256');
  hash.update(await readFile(source.modelJsonPath));
  const wd = loaded.artifacts.weightData;
  for (const part of wd === undefined ? [] : Array.isArray(wd) ? wd : [wd]) hash.update(new Uint8Array(part));
  hash.update(`\0layer=${layer}\0converter=${CONVERTER_VERSION}`);
  const onnxPath = join(cacheDir, 'onnx', `${hash.digest('hex')}.onnx`);

  const convert = async () => writeAtomic(onnxPath, convertToOnnx(loaded, layer).onnx);
  let cacheHit = await isFile(onnxPath);
  if (!cacheHit) await convert();
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(onnxPath, sessionOptions(threads));
  } catch (err) {
    if (!cacheHit) throw err;
    // A damaged cache file: convert again once.
    cacheHit = false;
    await convert();
    session = await ort.InferenceSession.create(onnxPath, sessionOptions(threads));
  }

  const runner: Runner = { session, inputName: session.inputNames[0], outputName: session.outputNames[0], layout: 'nhwc', range: range.inputRange };
  const featureMap = makeFeatureMap(runner);
  const release = () => void session.release().catch(() => undefined);
  let probe: FeatureMap;
  try {
    // Like loadBackbone: one probe at 224x224 proves the cut runs and tells the channel count.
    probe = await featureMap({ data: new Uint8Array(224 * 224 * 3), width: 224, height: 224 });
  } catch (err) {
    release();
    throw err;
  }
  const info: OnnxBackboneInfo = {
    backend: backendName(threads),
    model: source.spec,
    modelJsonPath: source.modelJsonPath,
    format,
    layer,
    layerChosenBy: opts.layer ? 'user' : 'auto',
    channels: probe.channels,
    ...range,
    onnxPath,
    onnxSource: 'converted',
    cacheHit,
    threads,
    inputLayout: 'nhwc',
  };
  return finish({ info, featureMap, candidateLayers: candidates, dispose: release }, runner, onnxPath, threads, opts);
}

/**
 * By default inference moves to a worker thread (session.run blocks its thread); the main-thread
 * session, used for the probe, is released.
 */
async function finish(backbone: OnnxBackbone, runner: Runner, onnxPath: string, threads: number, opts: OnnxBackboneOptions): Promise<OnnxBackbone> {
  if (opts.worker === false) return backbone;
  const { session: _session, ...config } = runner;
  const worker = await startInferenceWorker({ ...config, onnxPath, threads });
  backbone.dispose();
  return { ...backbone, featureMap: worker.featureMap, dispose: () => worker.close() };
}

async function loadUserOnnx(spec: string, opts: OnnxBackboneOptions, threads: number): Promise<OnnxBackbone> {
  const path = resolve(spec);
  if (!(await isFile(path))) throw new Error(`--model ${spec}: no such .onnx file`);
  const mean = perChannel('mean', opts.mean);
  const std = perChannel('std', opts.std);
  if (std?.some((s) => s === 0)) throw new Error('--std values must be non-zero');
  const session = await ort.InferenceSession.create(path, sessionOptions(threads));
  const release = () => void session.release().catch(() => undefined);
  try {
    const meta = session.inputMetadata[0];
    const inShape = meta && meta.isTensor ? meta.shape : [];
    const layout: TensorLayout = opts.inputLayout ?? (inShape.length === 4 && inShape[3] === 3 && inShape[1] !== 3 ? 'nhwc' : 'nchw');
    if (layout !== 'nhwc' && layout !== 'nchw') throw new Error(`--input-layout must be nhwc or nchw, got '${String(layout)}'`);
    const layer = opts.layer ?? session.outputNames[0];
    if (!session.outputNames.includes(layer)) {
      throw new Error(`--layer: '${layer}' is not an output of ${spec} (outputs: ${session.outputNames.join(', ')})`);
    }
    const range = opts.inputRange ?? ([0, 1] as const);
    const runner: Runner = { session, inputName: session.inputNames[0], outputName: layer, layout, range, mean, std };
    const featureMap = makeFeatureMap(runner);
    // Probe at the input's fixed size when it declares one, else 224x224.
    const [hAt, wAt] = layout === 'nhwc' ? [1, 2] : [2, 3];
    const fixed = (d: number | string | undefined) => (typeof d === 'number' && d > 0 ? d : 224);
    const [ph, pw] = [fixed(inShape[hAt]), fixed(inShape[wAt])];
    const probe = await featureMap({ data: new Uint8Array(ph * pw * 3), width: pw, height: ph });
    const info: OnnxBackboneInfo = {
      backend: backendName(threads),
      model: spec,
      modelJsonPath: path,
      // An ONNX file is a graph; BackboneInfo has no 'onnx' format.
      format: 'graph',
      layer,
      layerChosenBy: opts.layer ? 'user' : 'auto',
      channels: probe.channels,
      inputRange: range,
      // No registry/guess for .onnx files: [0, 1] unless the user says otherwise.
      inputRangeSource: opts.inputRange ? 'user' : 'graph-default',
      onnxPath: path,
      onnxSource: 'user',
      cacheHit: false,
      threads,
      inputLayout: layout,
      mean,
      std,
    };
    const candidates = () =>
      session.outputMetadata.map((m) => ({ name: m.name, kind: 'onnx-output', shape: m.isTensor ? m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : null)) : null }));
    return await finish({ info, featureMap, candidateLayers: candidates, dispose: release }, runner, path, threads, opts);
  } catch (err) {
    release();
    throw err;
  }
}
