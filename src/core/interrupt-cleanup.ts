import { closeSync, constants, openSync, statSync } from 'node:fs';
/**
 * What must happen when a signal stops the process (cli/interrupt.ts runs it): the layers that own
 * a resource register it here (locks, temp files, inference workers) without knowing about signals.
 */
const now = new Set<() => void>();
const closers = new Set<() => Promise<void>>();
let interrupted = false;

/** Whether a signal is stopping the process: nothing new may be created from then on. */
export const interruptedBySignal = (): boolean => interrupted;

const registerIn = <T>(set: Set<T>, item: T): (() => void) => {
  set.add(item);
  return () => {
    set.delete(item);
  };
};

/** A synchronous step (release a lock, remove a temp file), run first thing; returns its removal. */
export const atInterrupt = (step: () => void): (() => void) => registerIn(now, step);

/** Something to close before exiting (a worker inside ONNX Runtime, which process.exit would abort); returns its removal. */
export const closeAtInterrupt = (close: () => Promise<void>): (() => void) => registerIn(closers, close);

/** Runs the synchronous steps once each; one that throws does not stop the others. */
export function runInterruptSteps(): void {
  interrupted = true;
  const steps = [...now];
  now.clear();
  for (const step of steps) {
    try {
      step();
    } catch {
      /* best effort: the others and the exit matter more */
    }
  }
}

/** Closes what was registered, all at once; never rejects. */
export async function closeForInterrupt(): Promise<void> {
  const all = [...closers];
  closers.clear();
  await Promise.allSettled(all.map((close) => close()));
}

/**
 * A FIFO this process is opening: until its other end is opened, a thread of libuv's pool waits in
 * open(), and the process cannot exit while it waits. On a signal, this process opens the other end
 * itself (non-blocking) and closes it, so the open returns and the exit goes through.
 */
export function unblockFifoAtInterrupt(path: string, opening: 'read' | 'write'): () => void {
  return atInterrupt(() => {
    if (!statSync(path, { throwIfNoEntry: false })?.isFIFO()) return;
    closeSync(openSync(path, (opening === 'read' ? constants.O_WRONLY : constants.O_RDONLY) | constants.O_NONBLOCK));
  });
}
