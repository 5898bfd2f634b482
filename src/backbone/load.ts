/**
 * Engine choice: ONNX Runtime or tfjs. Neither runtime is imported here: each engine's module is
 * loaded (dynamically) only when that engine is tried, so `--help`, `merge` and the contract types
 * cost no model runtime.
 */
import { InvalidParameterError } from '../core/invalid.js';
import type { Backbone } from './contract.js';
import { isUserError, ModelOptionError } from './errors.js';
import type { OnnxBackboneOptions } from './onnx/backbone.js';
import { DEFAULT_MODEL_ID } from './registry.js';
import { defaultCacheDir, isOnnxModelSpec, resolveModel, type WarningSink } from './source.js';

export type EngineChoice = 'auto' | 'onnx' | 'tfjs';
export const ENGINE_CHOICES: readonly EngineChoice[] = ['auto', 'onnx', 'tfjs'];

export interface EngineOptions extends OnnxBackboneOptions {
  engine?: EngineChoice;
}

export interface EngineSelection {
  backbone: Backbone;
  engine: 'onnx' | 'tfjs';
  /** Why `auto` did not use ONNX Runtime, when it did not. */
  fallbackReason?: string;
  /** One line each, printed by the CLI without -v. */
  warnings?: string[];
}

/** The ONNX engine; its worker thread starts first and boots while the engine's code loads. */
async function loadOnnx(opts: EngineOptions): Promise<Backbone> {
  await prestartEngine(opts);
  try {
    const { loadOnnxBackbone } = await import('./onnx/backbone.js');
    return await loadOnnxBackbone(opts);
  } catch (err) {
    // Refused before it started its engine (a bad option): the prestarted worker is not needed.
    const { discardPrestartedWorker } = await import('./onnx/worker-client.js');
    await discardPrestartedWorker();
    throw err;
  }
}

/**
 * loadBackbone resolves the model itself, without a warning sink: resolving here first reports an
 * unwritable cache, and loadBackbone then finds the same cached (or private temp) copy.
 */
async function loadTfjs(opts: EngineOptions, onWarning: WarningSink): Promise<Backbone> {
  if (opts.mean || opts.std || opts.inputLayout) throw new ModelOptionError('--mean', '--mean/--std/--input-layout apply to the onnx engine only');
  const { engine: _e, threads: _t, onWarning: _w, worker: _k, ...options } = opts;
  await resolveModel(opts.model ?? DEFAULT_MODEL_ID, opts.cacheDir ?? defaultCacheDir(), { onWarning });
  const { loadBackbone } = await import('./tfjs/backbone.js');
  return loadBackbone(options);
}

/** Options that select the tfjs engine: --engine tfjs, or an explicit tfjs backend without an .onnx model or --engine onnx. */
function tfjsOnly(opts: Pick<EngineOptions, 'engine' | 'backend' | 'model'>): boolean {
  if (opts.engine === 'tfjs') return true;
  return opts.engine !== 'onnx' && !isOnnxModelSpec(opts.model) && opts.backend !== undefined && opts.backend !== 'auto';
}

/**
 * Starts what loadEngine(opts) will need, before it is called: the ONNX Runtime worker thread,
 * which takes ~50–100 ms to start and set up. A caller with start-up work of its own (imports,
 * listing inputs, opening the output) calls this first to overlap the two. Cheap: it imports
 * nothing heavy and validates nothing; a no-op when the options cannot use ONNX Runtime (engine
 * tfjs, an explicit tfjs backend, worker: false). A worker no load takes keeps nothing alive.
 */
export async function prestartEngine(opts: Pick<EngineOptions, 'engine' | 'backend' | 'worker' | 'model'> = {}): Promise<void> {
  if (tfjsOnly(opts) || opts.worker === false) return;
  const { prestartInferenceWorker } = await import('./onnx/worker-client.js');
  prestartInferenceWorker();
}

/** Said whenever `auto` ends up on tfjs: users should know their run is slower and numerically different. */
export function fallbackWarning(reason: string): string {
  return (
    `--engine auto fell back to tfjs (${reason}): about 10x slower, and descriptors differ from ONNX Runtime's ` +
    `by float32 noise (up to ~3e-4 of their largest value); --engine onnx makes this an error`
  );
}

/** Collects warnings once per key, passing each on to the caller's sink. */
function warningCollector(opts: EngineOptions): { warnings: string[]; onWarning: WarningSink } {
  const warnings: string[] = [];
  const seen = new Set<string>();
  const onWarning: WarningSink = (message, key = message) => {
    if (seen.has(key)) return;
    seen.add(key);
    warnings.push(message);
    opts.onWarning?.(message, key);
  };
  return { warnings, onWarning };
}

/**
 * `auto`: ONNX Runtime (about 10x faster than tfjs-wasm on CPU) when it loads and the model
 * converts; otherwise tfjs (tfjs-node, else wasm), with the reason kept for `info`/`--verbose`
 * and a warning. The user's own mistakes (isUserError: a missing model, an unknown layer, an
 * option that does not apply) fail the same on every engine and are reported, never fallen back
 * from. `warnings` also carries an unwritable model cache (once, however many files).
 */
export async function loadEngine(opts: EngineOptions): Promise<EngineSelection> {
  const choice = opts.engine ?? 'auto';
  if (!ENGINE_CHOICES.includes(choice)) throw new InvalidParameterError('--engine', `one of ${ENGINE_CHOICES.join(', ')}`, String(choice));
  const onnxFile = isOnnxModelSpec(opts.model);
  if (choice === 'tfjs' && onnxFile) throw new ModelOptionError('--engine', `--engine tfjs cannot run an .onnx model (${opts.model})`);
  const { warnings, onWarning } = warningCollector(opts);
  const withSink: EngineOptions = { ...opts, onWarning };
  const done = (s: EngineSelection): EngineSelection => (warnings.length > 0 ? { ...s, warnings } : s);

  if (choice === 'onnx' || onnxFile) return done({ backbone: await loadOnnx(withSink), engine: 'onnx' });
  // An explicit tfjs backend (node, wasm, cpu) means the tfjs engine.
  if (tfjsOnly(opts)) {
    return done({ backbone: await loadTfjs(opts, onWarning), engine: 'tfjs' });
  }
  try {
    return done({ backbone: await loadOnnx(withSink), engine: 'onnx' });
  } catch (err) {
    // The converter (UnsupportedOpError) or ONNX Runtime failing on this model or platform: tfjs may still work.
    if (isUserError(err)) throw err;
    const backbone = await loadTfjs(opts, onWarning);
    const fallbackReason = (err as Error).message.split('\n')[0];
    onWarning(fallbackWarning(fallbackReason));
    return done({ backbone, engine: 'tfjs', fallbackReason });
  }
}
