/**
 * The Backbone on ONNX Runtime (CPU): a TF.js model is converted once to ONNX (cached on disk), or a
 * user's own .onnx is run as is. Same model resolution, layer choice and input range as the tfjs
 * engine (rules.ts, preprocess.ts), so feature maps are interchangeable.
 *
 * Start-up: this module loads neither ONNX Runtime nor the converter. The inference worker is
 * started first and imports ONNX Runtime while this thread resolves the model, picks the layer and
 * checks the cache; the worker then creates the one session and probes it. The converter is
 * imported only when the cache has no usable copy.
 */
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { coreSplit } from '../../core/cores.js';
import { InvalidParameterError } from '../../core/invalid.js';
import { readModelFile, readWeights, type LoadedArtifacts, type ModelFile } from '../artifacts.js';
import type { Backbone, BackboneInfo, BackboneOptions, FeatureMap, RgbPixels } from '../contract.js';
import { fileSha256, fileVersion } from '../digest.js';
import { ModelOptionError } from '../errors.js';
import type { TensorLayout } from '../preprocess.js';
import { DEFAULT_MODEL_ID } from '../registry.js';
import { chooseLayer, graphNodes, pickInputRange, pickOnnxInputRange, validateInputRange, type LayerChoice, type RangeChoice } from '../rules.js';
import { defaultCacheDir, isOnnxModelSpec, localOnnxPath, resolveModel, type ResolvedModel, type WarningSink } from '../source.js';
import { cachedOnnx, cachedOnnxPath, fileIdentityKey, onnxCacheKey, readCached, readGuess, readIndexEntry, writeGuess, writeIndexEntry, type StoredOnnx } from './cache.js';
import type { OpenedModel, OpenRequest, Runner } from './session.js';
import { growingEngine } from './engine-pool.js';
import { spawnInferenceWorker, takeInferenceWorker, type InferenceEngine } from './worker-client.js';

export type { TensorLayout } from '../preprocess.js';
export { isSealedOnnx, sealOnnx } from './cache.js';

export interface OnnxBackboneOptions extends BackboneOptions {
  /** Run inference in a worker thread (default true) so decoding, SPP and writing overlap it. */
  worker?: boolean;
  /** ONNX Runtime intra-op threads; default half the cores (core/cores.ts). */
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
   * cache: a temporary file, deleted once the session has loaded it, or '(memory)'.
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

/** Default: half the cores, the rest to the sharp decoders that run ahead of the model (1 thread on 2 cores; see core/cores.ts). */
export function defaultThreads(): number {
  return coreSplit().threads;
}

function checkThreads(threads: number | undefined): number {
  const n = threads ?? defaultThreads();
  if (!Number.isInteger(n) || n < 1) throw new InvalidParameterError('--threads', 'a positive integer', String(threads));
  return n;
}

function channelTriple(name: string, v: readonly number[] | undefined): [number, number, number] | undefined {
  if (v === undefined) return undefined;
  if (!(v.length === 1 || v.length === 3) || !v.every(Number.isFinite)) {
    throw new InvalidParameterError(`--${name}`, '1 or 3 numbers', v.join(','));
  }
  return v.length === 1 ? [v[0], v[0], v[0]] : [v[0], v[1], v[2]];
}

function backendName(threads: number, sessions = 1): string {
  const more = sessions > 1 ? `; ${sessions} sessions if the run waits on it` : '';
  return `onnxruntime-node (cpu, ${threads} thread${threads === 1 ? '' : 's'}${more})`;
}

/**
 * Sessions the load may grow to, each with `threads` threads, once the run is found waiting on the
 * backbone (engine-pool.ts): as many as fill the cores — unless the user fixed --threads, or
 * inference stays on this thread.
 */
function sessionsFor(opts: OnnxBackboneOptions, threads: number): number {
  if (opts.threads !== undefined || opts.worker === false) return 1;
  return Math.max(1, Math.floor(availableParallelism() / threads));
}

/** Inference on this thread (worker: false): the same open / featureMap / close as the worker. */
function inThreadEngine(): InferenceEngine {
  let runner: Runner | undefined;
  let run: ((image: RgbPixels) => Promise<FeatureMap>) | undefined;
  return {
    open: async (source, request) => {
      const { openSession, makeFeatureMap } = await import('./session.js');
      await runner?.session.release().catch(() => undefined);
      const opened = await openSession(source, request);
      runner = opened.runner;
      run = makeFeatureMap(runner);
      return opened.opened;
    },
    preload: () => undefined,
    featureMap: (image) => (run ? run(image) : Promise.reject(new Error('no model opened'))),
    close: async () => {
      await runner?.session.release().catch(() => undefined);
      runner = run = undefined;
    },
  };
}

/** The worker starts now (it imports ONNX Runtime while the model is read); `worker: false` stays here. */
function startEngine(opts: OnnxBackboneOptions): InferenceEngine {
  return opts.worker === false ? inThreadEngine() : takeInferenceWorker();
}

/** Runs `body` with a fresh engine; the engine is closed when `body` fails. */
async function withEngine<T>(opts: OnnxBackboneOptions, body: (engine: InferenceEngine) => Promise<T>): Promise<T> {
  const engine = startEngine(opts);
  try {
    return await body(engine);
  } catch (err) {
    await engine.close();
    throw err;
  }
}

/**
 * Loads a backbone on ONNX Runtime. `opts.model` is anything loadBackbone accepts (converted to
 * ONNX, cached under `<cacheDir>/onnx/`), or a local `.onnx` file (then `--layer` names one of its
 * graph outputs, default the first).
 */
export async function loadOnnxBackbone(opts: OnnxBackboneOptions = {}): Promise<OnnxBackbone> {
  if (opts.inputRange) validateInputRange(opts.inputRange);
  const threads = checkThreads(opts.threads);
  const spec = opts.model ?? DEFAULT_MODEL_ID;
  return isOnnxModelSpec(spec) ? loadUserOnnx(spec, opts, threads) : loadConverted(spec, opts, threads);
}

/** A TF.js model's part of a load: where it is, its range and layer; its weights are read only when needed. */
interface ConvertedPlan {
  cacheDir: string;
  source: ResolvedModel;
  model: ModelFile;
  range: RangeChoice;
  choice: LayerChoice;
  /** The model files' identity (fileIdentityKey), when they could all be stat'ed. */
  identity?: string;
  /** The cache key of the .onnx the worker was asked to preload (readGuess). */
  guess?: string;
}

/** The weights read and hashed: the content-addressed .onnx this model converts to. */
interface WeighedPlan extends ConvertedPlan {
  loaded: LoadedArtifacts;
  key: string;
  onnxPath: string;
}

/** What a load opened, and (when it is a file of the cache) its cache key. */
interface Loaded {
  store: Stored;
  opened: OpenedModel;
  key?: string;
  /** The model's content identity (LoadedArtifacts.sha256). */
  modelSha256: string;
}

async function planConverted(spec: string, opts: OnnxBackboneOptions, engine: InferenceEngine, threads: number): Promise<ConvertedPlan> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const source = await resolveModel(spec, cacheDir, { onWarning: opts.onWarning });
  // The worker starts creating the session this model.json last opened while its files are read.
  const guess = opts.worker === false ? undefined : await readGuess(cacheDir, source.modelJsonPath, opts.layer);
  if (guess) engine.preload(cachedOnnxPath(cacheDir, guess), threads);
  const model = await readModelFile(source.modelJsonPath);
  const range = pickInputRange(opts, model.format, graphNodes(model.format, model.topology), source.registry?.inputRange);
  const choice = chooseLayer(model.format, model.topology, opts.layer, { spec: source.spec, embeddingNode: source.registry?.embeddingNode });
  const identity = await fileIdentityKey([source.modelJsonPath, ...model.weightFiles], choice.layer);
  return { cacheDir, source, model, range, choice, identity, guess };
}

async function weigh(plan: ConvertedPlan): Promise<WeighedPlan> {
  const loaded = await readWeights(plan.model);
  const key = await onnxCacheKey(plan.source.modelJsonPath, loaded, plan.choice.layer);
  return { ...plan, loaded, key, onnxPath: cachedOnnxPath(plan.cacheDir, key) };
}

async function convert(plan: WeighedPlan): Promise<Uint8Array> {
  const { convertToOnnx } = await import('./convert.js');
  return convertToOnnx(plan.loaded, plan.choice.layer).onnx;
}

type Stored = Pick<StoredOnnx, 'path' | 'cacheHit' | 'cacheFallback'>;

function convertedInfo(plan: ConvertedPlan, loaded: Loaded, threads: number, sessions: number): OnnxBackboneInfo {
  const { store, opened } = loaded;
  return {
    backend: backendName(threads, sessions),
    model: plan.source.spec,
    modelSha256: loaded.modelSha256,
    modelJsonPath: plan.source.modelJsonPath,
    format: plan.model.format,
    layer: plan.choice.layer,
    layerChosenBy: plan.choice.chosenBy,
    channels: opened.channels,
    ...plan.range,
    onnxPath: store.path ?? '(memory)',
    onnxSource: 'converted',
    cacheHit: store.cacheHit,
    ...(store.cacheFallback ? { cacheFallback: store.cacheFallback } : {}),
    threads,
    inputLayout: 'nhwc',
  };
}

/**
 * The worker loads a cached .onnx while this thread checks its seal (both take ~10 ms on a MobileNet).
 * A good seal keeps the worker's session; a torn or damaged file (ONNX Runtime refuses a cut-short
 * protobuf cleanly) is rebuilt by the caller, whose open replaces the session. Undefined: no usable copy.
 */
async function openCached(engine: InferenceEngine, path: string, request: OpenRequest): Promise<OpenedModel | undefined> {
  if (!(await isFile(path))) return undefined;
  const [sealed, opened] = await Promise.allSettled([readCached(path), engine.open(path, request)]);
  if (sealed.status === 'rejected' || sealed.value === undefined) return undefined;
  if (opened.status === 'rejected') throw opened.reason;
  return opened.value;
}

/** Converts (or finds a sealed copy written meanwhile), stores and opens the model. */
async function openConverted(engine: InferenceEngine, plan: WeighedPlan, request: OpenRequest, opts: OnnxBackboneOptions) {
  const store = await cachedOnnx(plan.onnxPath, () => convert(plan), plan.cacheDir, opts);
  // On this thread the session loads the checked bytes; the worker loads the file, or without one
  // (cache and temp dir unwritable) a copy of the bytes.
  const source = opts.worker === false ? store.bytes : (store.path ?? new Uint8Array(store.bytes));
  try {
    return { store, opened: await engine.open(source, request) };
  } finally {
    // The session holds the model now; a temporary copy is not needed past this point.
    store.cleanup();
  }
}

/**
 * A cached .onnx found without reading the weights: the model files' identity names the cache key
 * (and the probe) a previous load recorded. The seal is still checked; anything amiss falls through
 * to the full path.
 */
async function openIndexed(engine: InferenceEngine, plan: ConvertedPlan, request: OpenRequest, opts: OnnxBackboneOptions): Promise<Loaded | undefined> {
  const entry = plan.identity && (await readIndexEntry(plan.cacheDir, plan.identity));
  if (!entry) return undefined;
  const path = cachedOnnxPath(plan.cacheDir, entry.key);
  const known = { ...request, knownProbe: entry.probe };
  const bytes = opts.worker === false ? await readCached(path) : undefined;
  const opened = opts.worker !== false ? await openCached(engine, path, known) : bytes && (await engine.open(bytes, known));
  return opened && { store: { path, cacheHit: true }, opened, key: entry.key, modelSha256: entry.model };
}

/** Weights read and hashed: the cached .onnx under its content key, else converted and stored. */
async function openWeighed(engine: InferenceEngine, plan: ConvertedPlan, request: OpenRequest, opts: OnnxBackboneOptions): Promise<Loaded> {
  const weighed = await weigh(plan);
  // worker: false checks the seal first, then loads the checked bytes (one thread: nothing to overlap).
  const hit = opts.worker === false ? undefined : await openCached(engine, weighed.onnxPath, request);
  const { store, opened } = hit ? { store: { path: weighed.onnxPath, cacheHit: true }, opened: hit } : await openConverted(engine, weighed, request, opts);
  const modelSha256 = weighed.loaded.sha256;
  // Not in the cache (it could not be written): nothing to record.
  if (store.path !== weighed.onnxPath) return { store, opened, modelSha256 };
  if (plan.identity) await writeIndexEntry(plan.cacheDir, plan.identity, { key: weighed.key, model: modelSha256, probe: opened.probe });
  return { store, opened, key: weighed.key, modelSha256 };
}

async function loadConverted(spec: string, opts: OnnxBackboneOptions, threads: number): Promise<OnnxBackbone> {
  if (opts.mean || opts.std || opts.inputLayout === 'nchw') {
    throw new ModelOptionError('--mean', '--mean/--std/--input-layout apply to a .onnx model only; TF.js models take --input-range');
  }
  return withEngine(opts, async (first) => {
    const sessions = sessionsFor(opts, threads);
    const engine = sessions > 1 ? growingEngine(first, spawnInferenceWorker, sessions) : first;
    const plan = await planConverted(spec, opts, engine, threads);
    // Converted models are NHWC in and out; their one output is the feature map.
    const request: OpenRequest = { threads, range: plan.range.inputRange, layout: 'nhwc', label: plan.source.spec };
    const loaded = (await openIndexed(engine, plan, request, opts)) ?? (await openWeighed(engine, plan, request, opts));
    const { opened, key } = loaded;
    if (key && key !== plan.guess) await writeGuess(plan.cacheDir, plan.source.modelJsonPath, opts.layer, key);
    const info = convertedInfo(plan, loaded, threads, sessions);
    return { info, probe: opened.probe, featureMap: engine.featureMap, candidateLayers: plan.choice.candidates, dispose: engine.close };
  });
}

const INPUT_LAYOUTS: readonly TensorLayout[] = ['nhwc', 'nchw'];

async function loadUserOnnx(spec: string, opts: OnnxBackboneOptions, threads: number): Promise<OnnxBackbone> {
  const path = localOnnxPath(spec);
  if (!(await isFile(path))) {
    const there = await stat(path).then(() => true, () => false);
    throw new ModelOptionError('--model', `--model ${spec}: ${there ? 'is not a regular file' : 'no such .onnx file'}`);
  }
  const mean = channelTriple('mean', opts.mean);
  const std = channelTriple('std', opts.std);
  if (std?.some((s) => s === 0)) throw new ModelOptionError('--std', '--std values must be non-zero');
  if (opts.inputLayout !== undefined && !INPUT_LAYOUTS.includes(opts.inputLayout)) {
    throw new InvalidParameterError('--input-layout', 'nhwc or nchw', String(opts.inputLayout));
  }
  const range = pickOnnxInputRange(opts);
  return withEngine(opts, async (engine) => {
    // One session: a user's model may be large, and a second copy (engine-pool.ts) doubles its memory.
    const request = { threads, range: range.inputRange, mean, std, layout: opts.inputLayout, output: opts.layer, label: spec };
    // Outputs record the content's identity; the file hashed must be the file the session loaded.
    const read = await fileSha256(path);
    const opened = await engine.open(path, request);
    if ((await fileVersion(path)) !== read.version) {
      throw new ModelOptionError('--model', `--model ${spec}: the file changed while it was loading; run again once it is written`);
    }
    const info: OnnxBackboneInfo = {
      backend: backendName(threads),
      model: spec,
      modelSha256: read.sha256,
      modelJsonPath: path,
      // An ONNX file is a graph; BackboneInfo has no 'onnx' format.
      format: 'graph',
      layer: opened.outputName,
      layerChosenBy: opts.layer ? 'user' : 'auto',
      channels: opened.channels,
      ...range,
      onnxPath: path,
      onnxSource: 'user',
      cacheHit: false,
      threads,
      inputLayout: opened.layout,
      mean,
      std,
    };
    return { info, probe: opened.probe, featureMap: engine.featureMap, candidateLayers: () => opened.outputs, dispose: engine.close };
  });
}
