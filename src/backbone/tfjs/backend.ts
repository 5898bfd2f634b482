/**
 * The tfjs runtime and its backend, loaded on first use: importing this module loads no tfjs
 * (`@tensorflow/tfjs` alone takes ~200 ms to import), only initBackend / loadTfjs do.
 */
import { InvalidParameterError } from '../../core/invalid.js';
import type { BackendChoice } from '../contract.js';
import { ModelOptionError } from '../errors.js';

export type { BackendChoice };
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'node', 'wasm', 'cpu'];

export type Tfjs = typeof import('@tensorflow/tfjs');

/** Name tfjs registers each backend under. */
const TFJS_NAME = { node: 'tensorflow', wasm: 'wasm', cpu: 'cpu' } as const;

let tfjs: Promise<Tfjs> | undefined;
let active: { choice: Exclude<BackendChoice, 'auto'>; name: string } | undefined;

/** `@tensorflow/tfjs`, imported once. */
export function loadTfjs(): Promise<Tfjs> {
  tfjs ??= import('@tensorflow/tfjs');
  return tfjs;
}

async function tryNode(): Promise<string | undefined> {
  try {
    // Optional dependency: its install downloads libtensorflow, which fails offline.
    await import('@tensorflow/tfjs-node' as string);
    return undefined;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
}

async function activate(choice: Exclude<BackendChoice, 'auto'>): Promise<void> {
  const tf = await loadTfjs();
  if (choice === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  const ok = await tf.setBackend(TFJS_NAME[choice]);
  if (!ok) throw new ModelOptionError('--backend', `--backend ${choice}: tfjs could not initialise the '${TFJS_NAME[choice]}' backend`);
  await tf.ready();
  // The cpu backend's first tensor prints a banner advising tfjs-node on stderr ("Hi, looks like you are
  // running TensorFlow.js in Node.js"): the user asked for cpu, and stderr is the tool's to speak on.
  if (choice === 'cpu') Object.assign(tf.findBackend('cpu') ?? {}, { firstUse: false });
  active = { choice, name: TFJS_NAME[choice] };
}

/**
 * Selects the tfjs backend once per process: tfjs-node when it loads, else wasm. The pure-JS cpu
 * backend is ~20x slower and only used when asked for explicitly.
 */
export async function initBackend(requested: BackendChoice): Promise<string> {
  if (!BACKEND_CHOICES.includes(requested)) {
    throw new InvalidParameterError('--backend', `one of ${BACKEND_CHOICES.join(', ')}`, String(requested));
  }
  if (active && (requested === 'auto' || requested === active.choice)) return active.name;
  if (requested === 'node' || requested === 'auto') {
    const failure = await tryNode();
    if (failure === undefined) {
      await activate('node');
      return active!.name;
    }
    if (requested === 'node') {
      throw new ModelOptionError('--backend', `--backend node: @tensorflow/tfjs-node did not load (${failure}); use --backend wasm`);
    }
  }
  await activate(requested === 'auto' ? 'wasm' : requested);
  return active!.name;
}
