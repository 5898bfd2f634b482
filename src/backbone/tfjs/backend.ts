import * as tf from '@tensorflow/tfjs';

export type BackendChoice = 'auto' | 'node' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'node', 'wasm', 'cpu'];
/** Name tfjs registers each backend under. */
const TFJS_NAME = { node: 'tensorflow', wasm: 'wasm', cpu: 'cpu' } as const;

let active: { choice: Exclude<BackendChoice, 'auto'>; name: string } | undefined;

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
  if (choice === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  const ok = await tf.setBackend(TFJS_NAME[choice]);
  if (!ok) throw new Error(`--backend ${choice}: tfjs could not initialise the '${TFJS_NAME[choice]}' backend`);
  await tf.ready();
  active = { choice, name: TFJS_NAME[choice] };
}

/**
 * Selects the tfjs backend once per process: tfjs-node when it loads, else wasm. The pure-JS cpu
 * backend is ~20x slower and only used when asked for explicitly.
 */
export async function initBackend(requested: BackendChoice): Promise<string> {
  if (!BACKEND_CHOICES.includes(requested)) {
    throw new Error(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got '${String(requested)}'`);
  }
  if (active && (requested === 'auto' || requested === active.choice)) return active.name;
  if (requested === 'node' || requested === 'auto') {
    const failure = await tryNode();
    if (failure === undefined) {
      await activate('node');
      return active!.name;
    }
    if (requested === 'node') {
      throw new Error(`--backend node: @tensorflow/tfjs-node did not load (${failure}); use --backend wasm`);
    }
  }
  await activate(requested === 'auto' ? 'wasm' : requested);
  return active!.name;
}

export { tf };
