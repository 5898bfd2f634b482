/**
 * SIGINT / SIGTERM from the command's first moment to its exit. Without a handler Node dies of the
 * signal (exit 143) and no 'exit' listener runs, so the output's lock stays behind. Here a signal
 * releases the locks and removes the temp files that are not resumable state (the steps registered
 * in core/interrupt-cleanup.ts), says one line about what is on disk, closes the inference workers
 * (process.exit while ONNX Runtime runs in one aborts the process) and exits 130. The run loop
 * takes the signals over while it runs (it finishes the image in flight and writes what is done).
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { atInterrupt, closeForInterrupt, interruptedBySignal, runInterruptSteps } from '../core/interrupt-cleanup.js';
import { printable } from '../core/printable.js';
import { EXIT } from './exit.js';

type Handler = (sig: NodeJS.Signals) => void;

let note = 'stopped; nothing written';
let takenOver: Handler | undefined;
let installed = false;
/** What the first stop line said about the disk. */
let said: string | undefined;

/**
 * Cleans up, says `spp-extract: SIGTERM: <what>`, exits 130 once the workers are closed. A signal
 * while they close exits at once. Also the run loop's second signal.
 */
export function stopNow(sig: NodeJS.Signals, what: string = note): void {
  if (interruptedBySignal()) {
    // Impatience while the workers close: say so, and what the first line said is still true.
    process.stderr.write(`spp-extract: ${sig} again: exiting without waiting; ${printable(said ?? what)}\n`);
    process.exit(EXIT.interrupted);
  }
  runInterruptSteps();
  said = what;
  process.stderr.write(`spp-extract: ${sig}: ${printable(what)}\n`);
  process.exitCode = EXIT.interrupted;
  void closeForInterrupt().finally(() => process.exit(EXIT.interrupted));
}

/** Whether a signal is stopping the process: the errors of what it cut short are not news. */
export const isStopping = interruptedBySignal;

const dispatch: Handler = (sig) => (takenOver && !interruptedBySignal() ? takenOver(sig) : stopNow(sig));

/** Installs the handler; returns its removal, a no-op where it was installed already (bin did). */
export function installInterruptHandler(): () => void {
  if (installed) return () => undefined;
  installed = true;
  process.on('SIGINT', dispatch);
  process.on('SIGTERM', dispatch);
  return () => {
    installed = false;
    process.off('SIGINT', dispatch);
    process.off('SIGTERM', dispatch);
  };
}

/** What the line says about the disk if a signal comes now; returns the restore of the previous note. */
export function interruptNote(text: string): () => void {
  const before = note;
  note = text;
  return () => {
    note = before;
  };
}

/**
 * Temp files this process is about to create that are worthless if it stops before using them (not
 * resumable): removed on a signal. Only names free now: what an earlier run left is not ours to remove.
 */
export function removeOnInterrupt(paths: readonly string[]): () => void {
  const ours = paths.filter((p) => lstatSync(p, { throwIfNoEntry: false }) === undefined);
  return atInterrupt(() => {
    for (const p of ours) {
      try {
        unlinkSync(p);
      } catch {
        /* never created, or gone */
      }
    }
  });
}

/** The run loop's own handling while it runs; returns the hand-back. */
export function takeOverSignals(handler: Handler): () => void {
  takenOver = handler;
  return () => {
    if (takenOver === handler) takenOver = undefined;
  };
}

/**
 * Runs `commit` (an output's final syncs and renames) to its end whatever signals come: stopping
 * between two renames could leave new data without its manifest, or an old output half replaced. A
 * signal meanwhile is acted on once it is done, saying `after(ok)`.
 */
export async function uninterrupted<T>(commit: () => Promise<T>, after: (ok: boolean) => string = () => note): Promise<T> {
  let got: NodeJS.Signals | undefined;
  const before = takenOver;
  takenOver = (sig) => {
    got ??= sig;
  };
  let ok = false;
  try {
    const result = await commit();
    ok = true;
    return result;
  } finally {
    takenOver = before;
    if (got) stopNow(got, after(ok));
  }
}
