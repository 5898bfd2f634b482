import { loadBackbone, type Backbone, type BackboneOptions } from './tfjs/backbone.js';
import { DEFAULT_MODEL_ID } from './registry.js';
import { defaultCacheDir, resolveModel, type WarningSink } from './source.js';
import type { OnnxBackboneOptions } from './onnx/backbone.js';

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

const isOnnxModel = (spec: string | undefined) => spec !== undefined && /\.onnx$/i.test(spec);

async function loadOnnx(opts: EngineOptions): Promise<Backbone> {
  const { loadOnnxBackbone } = await import('./onnx/backbone.js');
  return loadOnnxBackbone(opts);
}

function tfjsOptions(opts: EngineOptions): BackboneOptions {
  if (opts.mean || opts.std || opts.inputLayout) throw new Error('--mean/--std/--input-layout apply to the onnx engine only');
  const { engine: _e, threads: _t, onWarning: _w, worker: _k, ...rest } = opts;
  return rest;
}

/**
 * loadBackbone resolves the model itself, without a warning sink: resolving here first reports an
 * unwritable cache, and loadBackbone then finds the same cached (or private temp) copy.
 */
async function loadTfjs(opts: EngineOptions, onWarning: WarningSink): Promise<Backbone> {
  const options = tfjsOptions(opts);
  await resolveModel(opts.model ?? DEFAULT_MODEL_ID, opts.cacheDir ?? defaultCacheDir(), { onWarning });
  return loadBackbone(options);
}

/** Said whenever `auto` ends up on tfjs: users should know their run is slower and numerically different. */
export function fallbackWarning(reason: string): string {
  return (
    `--engine auto fell back to tfjs (${reason}): about 10x slower, and descriptors differ from ONNX Runtime's ` +
    `by float32 noise (up to ~3e-4 of their largest value); --engine onnx makes this an error`
  );
}

/**
 * `auto`: ONNX Runtime (about 10x faster than tfjs-wasm on CPU) when it loads and the model
 * converts; otherwise tfjs (tfjs-node, else wasm), with the reason kept for `info`/`--verbose`
 * and a warning. `warnings` also carries an unwritable model cache (once, however many files).
 */
export async function loadEngine(opts: EngineOptions): Promise<EngineSelection> {
  const choice = opts.engine ?? 'auto';
  if (!ENGINE_CHOICES.includes(choice)) throw new Error(`--engine must be one of ${ENGINE_CHOICES.join(', ')}, got '${String(choice)}'`);
  if (choice === 'tfjs' && isOnnxModel(opts.model)) throw new Error(`--engine tfjs cannot run an .onnx model (${opts.model})`);
  const warnings: string[] = [];
  const seen = new Set<string>();
  const onWarning: WarningSink = (message, key = message) => {
    if (seen.has(key)) return;
    seen.add(key);
    warnings.push(message);
    opts.onWarning?.(message, key);
  };
  const withSink: EngineOptions = { ...opts, onWarning };
  const done = (s: EngineSelection): EngineSelection => (warnings.length > 0 ? { ...s, warnings } : s);

  if (choice === 'onnx' || isOnnxModel(opts.model)) return done({ backbone: await loadOnnx(withSink), engine: 'onnx' });
  // An explicit tfjs backend (node, wasm, cpu) means the tfjs engine.
  if (choice === 'tfjs' || (opts.backend !== undefined && opts.backend !== 'auto')) {
    return done({ backbone: await loadTfjs(opts, onWarning), engine: 'tfjs' });
  }
  try {
    return done({ backbone: await loadOnnx(withSink), engine: 'onnx' });
  } catch (err) {
    const e = err as Error;
    // Option errors (bad --model, --layer …) are the user's to fix; anything else is the
    // converter or ONNX Runtime failing on this model or platform, where tfjs still works.
    if (/^--/.test(e.message)) throw err;
    const backbone = await loadTfjs(opts, onWarning);
    const fallbackReason = e.message.split('\n')[0];
    onWarning(fallbackWarning(fallbackReason));
    return done({ backbone, engine: 'tfjs', fallbackReason });
  }
}
