import { closeSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { OutputError, OutputRefused } from './errors.js';

/** `.feats.npy.lock` beside the output: one writer per output, across processes on shared storage. */
export function lockPathFor(outputPath: string): string {
  return join(dirname(outputPath), `.${basename(outputPath)}.lock`);
}

interface Holder { pid: number; host: string; started: string }

export interface OutputLock {
  readonly path: string;
  release(): void;
}

function readHolder(path: string): Holder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as Holder;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** O_EXCL create: exactly one process wins. */
function tryCreate(path: string, holder: Holder): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    const text = JSON.stringify(holder) + '\n';
    if (writeSync(fd, text) !== Buffer.byteLength(text)) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
  } catch (err) {
    closeSync(fd);
    unlinkSync(path);
    throw err;
  }
  closeSync(fd);
  return true;
}

/**
 * A lock that a dead process on this host left (kill -9, node crash, Slurm preemption). Taken over
 * by renaming it aside first: of two processes racing for the same stale lock only one rename
 * succeeds, so only one of them goes on to create the new lock.
 */
function takeOverStale(path: string, stale: Holder): boolean {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch {
    return false;
  }
  const moved = readHolder(aside);
  const same = stale.pid === -1
    ? moved === undefined
    : moved !== undefined && moved.pid === stale.pid && moved.host === stale.host && moved.started === stale.started;
  if (!same) {
    // Someone replaced it between our read and our rename: their lock is live, put it back.
    try {
      linkSync(aside, path);
    } catch {
      /* a newer lock is there already */
    }
    unlinkSync(aside);
    return false;
  }
  unlinkSync(aside);
  return true;
}

/**
 * Takes the output's lock or refuses naming who holds it. Released by `release()` and, as a last
 * resort, when the process exits (a second Ctrl-C).
 */
export function acquireOutputLock(outputPath: string, target: string): OutputLock {
  const path = lockPathFor(outputPath);
  const me: Holder = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      if (tryCreate(path, me)) return held(path);
    } catch (err) {
      throw new OutputError(target, `cannot create the lock file ${basename(path)}`, err);
    }
    const holder = readHolder(path);
    if (!holder) {
      // Empty or torn: a process died between create and write. Old enough to be sure, take it.
      const age = Date.now() - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 10_000 && takeOverStale(path, { pid: -1, host: '', started: '' })) continue;
      throw new OutputRefused(`-o ${target}: another spp-extract run is starting on it (lock ${path}); try again in a moment`);
    }
    if (holder.host === me.host && !isAlive(holder.pid)) {
      takeOverStale(path, holder);
      continue; // won or lost the take-over, look again
    }
    const where = holder.host === me.host ? `pid ${holder.pid}` : `pid ${holder.pid} on host ${holder.host}`;
    throw new OutputRefused(`-o ${target}: in use by another spp-extract run (${where}, since ${holder.started}); ` +
      `wait for it, or if that run is dead delete ${path}`);
  }
  throw new OutputRefused(`-o ${target}: could not take the lock ${path}; try again`);
}

function held(path: string): OutputLock {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  };
  process.on('exit', release);
  return { path, release };
}
