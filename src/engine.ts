import { loadBackbone, type Backbone, type BackboneOptions } from './model/backbone.js';
import type { OnnxBackboneOptions } from './onnx/engine.js';

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
  const { loadOnnxBackbone } = await import('./onnx/engine.js');
  return loadOnnxBackbone(opts);
}

function tfjsOptions(opts: EngineOptions): BackboneOptions {
  if (opts.mean || opts.std || opts.inputLayout) throw new Error('--mean/--std/--input-layout apply to the onnx engine only');
  const { engine: _e, threads: _t, ...rest } = opts;
  return rest;
}

/**
 * `auto`: ONNX Runtime (about 10x faster than tfjs-wasm on CPU) when it loads and the model
 * converts; otherwise tfjs (tfjs-node, else wasm), with the reason kept for `info`/`--verbose`.
 */
export async function loadEngine(opts: EngineOptions): Promise<EngineSelection> {
  const choice = opts.engine ?? 'auto';
  if (!ENGINE_CHOICES.includes(choice)) throw new Error(`--engine must be one of ${ENGINE_CHOICES.join(', ')}, got '${String(choice)}'`);
  if (choice === 'tfjs' && isOnnxModel(opts.model)) throw new Error(`--engine tfjs cannot run an .onnx model (${opts.model})`);
  if (choice === 'onnx' || isOnnxModel(opts.model)) return { backbone: await loadOnnx(opts), engine: 'onnx' };
  // An explicit tfjs backend (node, wasm, cpu) means the tfjs engine.
  if (choice === 'tfjs' || (opts.backend !== undefined && opts.backend !== 'auto')) {
    return { backbone: await loadBackbone(tfjsOptions(opts)), engine: 'tfjs' };
  }
  try {
    return { backbone: await loadOnnx(opts), engine: 'onnx' };
  } catch (err) {
    const e = err as Error;
    // Option errors (bad --model, --layer …) are the user's to fix; anything else is the
    // converter or ONNX Runtime failing on this model or platform, where tfjs still works.
    if (/^--/.test(e.message)) throw err;
    const backbone = await loadBackbone(tfjsOptions(opts));
    return { backbone, engine: 'tfjs', fallbackReason: e.message.split('\n')[0] };
  }
}
