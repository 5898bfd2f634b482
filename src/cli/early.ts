/**
 * The inference worker's head start. bin/spp-extract.js (which bin/spp-extract.cjs loads) calls
 * prestartForArgv before the CLI's own code loads, so the worker boots ONNX Runtime (~70 ms) while
 * commander, sharp and the model are loaded on this thread. Only a cheap look at argv, before any parsing: a wrong guess costs an
 * idle worker, which main closes at exit. The precise choice is still loadEngine's.
 */
let started = false;

const NO_EXTRACTION = new Set(['--help', '-h', '--version', '-V']);
const COMMANDS = new Set(['info', 'merge', 'help']);

/** Whether these arguments (argv without node and the script) may run the extract command on ONNX Runtime. */
export function mayExtractOnOnnx(args: readonly string[]): boolean {
  if (args.length === 0 || COMMANDS.has(args[0])) return false;
  for (const [i, a] of args.entries()) {
    if (a === '--') break;
    if (NO_EXTRACTION.has(a) || a === '--engine=tfjs' || (a === '--engine' && args[i + 1] === 'tfjs')) return false;
    // An explicit tfjs backend usually means the tfjs engine: leave the choice to the real prestart.
    if (a === '--backend' || a.startsWith('--backend=')) return false;
  }
  return true;
}

export async function prestartForArgv(argv: readonly string[]): Promise<void> {
  if (!mayExtractOnOnnx(argv.slice(2))) return;
  const { prestartInferenceWorker } = await import('../backbone/onnx/worker-client.js');
  started = true;
  prestartInferenceWorker();
}

/** Whether prestartForArgv started a worker (main closes one no load took). */
export function startedEarly(): boolean {
  return started;
}
