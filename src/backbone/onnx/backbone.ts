/**
 * The Backbone on ONNX Runtime (CPU): a TF.js model is converted once to ONNX (cached on disk), or a
 * user's own .onnx is run as is. Same model resolution, layer choice and input range as the tfjs
 * path (loadBackbone), so feature maps are interchangeable.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { FeatureMap } from '../../spp/spp.js';
import { readArtifacts } from '../artifacts.js';
import {
  autoGraphNode,
  pickInputRange,
  validateInputRange,
  type Backbone,
  type BackboneInfo,
  type BackboneOptions,
  type LayerCandidate,
  type RgbImage,
} from '../tfjs/backbone.js';
import { DEFAULT_MODEL_ID } from '../registry.js';
import {
  CACHE_WARNING_KEY,
  cacheUnwritableWarning,
  defaultCacheDir,
  ensureDir,
  isFsError,
  privateTempDir,
  resolveModel,
  sweepStale,
  type WarningSink,
} from '../source.js';
import { makeFeatureMap, sessionOptions, type Runner, type TensorLayout } from './session.js';
import { startInferenceWorker } from './worker-client.js';
import { CONVERTER_VERSION, autoKerasLeaf, convertToOnnx, kerasLeaves, parseLayersTopology } from './convert.js';


export type { TensorLayout } from './session.js';

// With $HOME unwritable (docker run --user), ORT's telemetry falls back to writing ':memory:.ses'
// into the working directory and logs "Failed to persist telemetry device ID" on stderr. Read by
// ORT when its environment is created (first session), so set before that; a user's value is kept.
process.env.ORT_DISABLE_TELEMETRY ??= '1';
// ORT's default 'warning' level prints lines beside our own one-line warnings; an embedding
// application's choice of level is kept.
if (ort.env.logLevel === 'warning') ort.env.logLevel = 'error';

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
  /** Problems worth one line to the user (an unwritable cache); loadEngine collects them. */
  onWarning?: WarningSink;
}

export interface OnnxBackboneInfo extends BackboneInfo {
  /**
   * The .onnx file the session runs: the cached conversion, or the user's file. With an unwritable
   * cache: a temporary file, deleted once the sessions have loaded it, or '(memory)'.
   */
  readonly onnxPath: string;
  readonly onnxSource: 'converted' | 'user';
  /** Converted models: whether the .onnx came from the cache (false: converted by this load). */
  readonly cacheHit: boolean;
  /** Set when the cache could not be written: why, and where the model was put instead. */
  readonly cacheFallback?: { readonly reason: string; readonly to: 'temp' | 'memory' };
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

/** Unique temp name + rename: concurrent writers each install a whole file, readers never see a partial one. */
async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await ensureDir(dirname(path));
  await sweepStale(dirname(path), (name) => /\.onnx\.tmp-\d+-[0-9a-f]{8}$/.test(name));
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, bytes, { flag: 'wx' });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/*
 * Cached .onnx files carry their own checksum, so a file torn by a killed process (or damaged on
 * disk) is detected instead of loaded: the SHA-256 of the model bytes is appended as one more
 * ModelProto.metadata_props entry (field 14), which ONNX Runtime reads as ordinary metadata.
 */
const SEAL_KEY = 'spp_extract_sha256';
const SEAL_HEAD = Buffer.from([0x72, 2 + SEAL_KEY.length + 2 + 64, 0x0a, SEAL_KEY.length, ...Buffer.from(SEAL_KEY), 0x12, 64]);
const SEAL_LENGTH = SEAL_HEAD.length + 64;

export function sealOnnx(model: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(model).digest('hex');
  return Buffer.concat([model, SEAL_HEAD, Buffer.from(digest, 'latin1')]);
}

/** True when `bytes` end with a seal whose checksum matches everything before it. */
export function isSealedOnnx(bytes: Uint8Array): boolean {
  if (bytes.byteLength <= SEAL_LENGTH) return false;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = buf.byteLength - SEAL_LENGTH;
  if (!buf.subarray(at, at + SEAL_HEAD.length).equals(SEAL_HEAD)) return false;
  const digest = createHash('sha256').update(buf.subarray(0, at)).digest('hex');
  return buf.subarray(at + SEAL_HEAD.length).toString('latin1') === digest;
}

/** The cached model's bytes, or undefined when missing, torn or corrupt (then it is rebuilt). */
async function readCached(path: string): Promise<Uint8Array | undefined> {
  const bytes = await readFile(path).catch(() => undefined);
  return bytes && isSealedOnnx(bytes) ? bytes : undefined;
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
  const source = await resolveModel(spec, cacheDir, { onWarning: opts.onWarning });
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

  const store = await cachedOnnx(onnxPath, () => convertToOnnx(loaded, layer).onnx, cacheDir, opts);
  const { cacheHit, cacheFallback } = store;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(store.bytes, sessionOptions(threads));
  } catch (err) {
    store.cleanup();
    throw err;
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
    store.cleanup();
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
    onnxPath: store.path ?? '(memory)',
    onnxSource: 'converted',
    cacheHit,
    ...(cacheFallback ? { cacheFallback } : {}),
    threads,
    inputLayout: 'nhwc',
  };
  const backbone: OnnxBackbone = { info, featureMap, candidateLayers: candidates, dispose: release };
  // No file for the worker to load: inference stays on this thread.
  if (store.path === undefined) return backbone;
  try {
    return await finish(backbone, runner, store.path, threads, opts);
  } finally {
    // The sessions hold the model now; a temporary copy is not needed past this point.
    store.cleanup();
  }
}

interface StoredOnnx {
  bytes: Uint8Array;
  /** File the inference worker loads; undefined when the model exists only in memory. */
  path?: string;
  cacheHit: boolean;
  cacheFallback?: { reason: string; to: 'temp' | 'memory' };
  /** Removes a temporary copy (no-op for the cache). */
  cleanup: () => void;
}

/**
 * The converted model, from the cache when a sealed copy is there, else converted and stored with
 * an atomic rename. When the cache cannot be written (EACCES, EROFS, ENOTDIR, /proc, a full disk)
 * the model goes to a private temp file (or stays in memory) and one warning says how to fix it.
 */
async function cachedOnnx(onnxPath: string, convert: () => Uint8Array, cacheDir: string, opts: OnnxBackboneOptions): Promise<StoredOnnx> {
  const cached = await readCached(onnxPath);
  if (cached) return { bytes: cached, path: onnxPath, cacheHit: true, cleanup: () => undefined };
  const bytes = sealOnnx(convert());
  try {
    await writeAtomic(onnxPath, bytes);
    return { bytes, path: onnxPath, cacheHit: false, cleanup: () => undefined };
  } catch (err) {
    if (!isFsError(err)) throw err;
    opts.onWarning?.(cacheUnwritableWarning(cacheDir, err), CACHE_WARNING_KEY);
    const reason = err.message.split('\n')[0];
    if (opts.worker === false) return { bytes, cacheHit: false, cacheFallback: { reason, to: 'memory' }, cleanup: () => undefined };
    let dir: string | undefined;
    try {
      dir = await privateTempDir();
      const path = join(dir, 'model.onnx');
      await writeFile(path, bytes);
      const remove = () => rmSync(dir!, { recursive: true, force: true });
      return { bytes, path, cacheHit: false, cacheFallback: { reason, to: 'temp' }, cleanup: remove };
    } catch {
      if (dir) rmSync(dir, { recursive: true, force: true });
      return { bytes, cacheHit: false, cacheFallback: { reason, to: 'memory' }, cleanup: () => undefined };
    }
  }
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
