import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, readFileSync, readlinkSync, readSync, renameSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { atInterrupt } from '../core/interrupt-cleanup.js';
import { OutputError, OutputRefused } from './errors.js';
import { fileKind } from '../core/file-kind.js';

/** `.feats.npy.lock` beside the output: one writer per output, across processes on shared storage. */
export function lockPathFor(outputPath: string): string {
  return join(dirname(outputPath), `.${basename(outputPath)}.lock`);
}

/**
 * Who holds a lock, with enough to tell whether it is still alive: the pid alone is not (a restarted
 * container gets the same small pid in a fresh pid namespace; pids are reused after a reboot).
 */
interface Holder {
  pid: number;
  host: string;
  started: string;
  /** Linux: boot id, pid namespace and the process's start time (clock ticks since boot). */
  boot?: string;
  pidns?: string;
  pstart?: string;
  /** Slurm: a requeued task keeps its job id and counts up SLURM_RESTART_COUNT. */
  job?: string;
  restart?: number;
}

/** A holder on another host or in another container refreshes its lock this often… */
const HEARTBEAT_MS = 30_000;
/** …so a lock not refreshed for this long belongs to a dead run, wherever it ran. */
export const LEASE_MS = 120_000;

export interface OutputLock {
  readonly path: string;
  release(): void;
}

/** What is at a lock path: a lock file (its holder, unless empty or torn, and its age), or nothing. */
type Found = { holder: Holder | undefined; ageMs: number } | undefined;

/** A lock file is a few hundred bytes; more is not ours. */
const LOCK_READ_MAX = 64 * 1024;

/**
 * Reads a lock file without ever blocking or following a link: opened non-blocking with O_NOFOLLOW
 * and read only if the descriptor is a regular file. Anything else at the lock path (a FIFO would
 * block the read forever, a directory or a link is no lock of ours) is refused: never renamed,
 * never waited on. `target` is the `-o` for the message.
 */
function readLockFile(path: string, target: string): Found {
  const refuse = (what: string) => new OutputRefused(`-o ${target}: the lock path ${path} is ${what}, not a lock file; remove it, then run again`);
  const seen = lstatSync(path, { throwIfNoEntry: false });
  if (!seen) return undefined;
  if (!seen.isFile()) throw refuse(fileKind(seen));
  let fd: number;
  try {
    // O_NOFOLLOW and O_NONBLOCK are 0 where the platform lacks them (Windows has no FIFOs to fear).
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined; // released since the lstat
    if (code === 'ELOOP') throw refuse('a symbolic link');
    if (code === 'ENXIO') throw refuse('a socket');
    throw new OutputError(target, `cannot read the lock file ${path}`, err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuse(fileKind(st));
    const buf = Buffer.alloc(Math.min(st.size, LOCK_READ_MAX));
    const n = buf.length > 0 ? readSync(fd, buf, 0, buf.length, 0) : 0;
    return { holder: parseHolder(buf.subarray(0, n).toString('utf8')), ageMs: Date.now() - st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

function parseHolder(text: string): Holder | undefined {
  try {
    const h = JSON.parse(text) as Holder;
    return typeof h?.pid === 'number' && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

const readOr = (read: () => string): string | undefined => {
  try {
    return read().trim();
  } catch {
    return undefined;
  }
};

/** Field 22 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces). */
function processStart(pid: number | 'self'): string | undefined {
  const stat = readOr(() => readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function whoAmI(): Holder {
  const restart = Number(process.env.SLURM_RESTART_COUNT ?? 0);
  return {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    boot: readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
    pidns: readOr(() => readlinkSync('/proc/self/ns/pid')),
    pstart: processStart('self'),
    ...(process.env.SLURM_JOB_ID ? { job: process.env.SLURM_JOB_ID, restart: Number.isFinite(restart) ? restart : 0 } : {}),
  };
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Why the holder is certainly dead, or undefined while it may be alive. */
export function deadHolderReason(holder: Holder, me: Holder, lockAgeMs: number): string | undefined {
  if (holder.job !== undefined && holder.job === me.job && (holder.restart ?? 0) < (me.restart ?? 0)) return 'an earlier attempt of this Slurm job';
  if (holder.host === me.host && holder.boot !== undefined && me.boot !== undefined && holder.boot !== me.boot) return 'the machine rebooted since';
  // A holder that recorded no namespace (another OS, an older lock) is taken to share ours.
  if (holder.host === me.host && (holder.pidns ?? me.pidns) === me.pidns) {
    if (holder.pid === me.pid) return 'its pid is now this process';
    if (!pidExists(holder.pid)) return 'its process is gone';
    if (holder.pstart !== undefined && processStart(holder.pid) !== holder.pstart) return 'its pid belongs to another process now';
    return undefined;
  }
  // Another host or container: only its heartbeat can tell.
  return lockAgeMs > LEASE_MS ? `no heartbeat for ${Math.round(lockAgeMs / 1000)} s` : undefined;
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
function takeOverStale(path: string, stale: Holder, target: string): boolean {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch {
    return false;
  }
  let moved: Holder | undefined;
  try {
    moved = readLockFile(aside, target)?.holder;
  } catch (err) {
    // Swapped for something that is no lock file between our look and the rename: put it back as it was.
    renameSync(aside, path);
    throw err;
  }
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
/** Locks this process holds: taking one twice is a refusal, not a take-over of "our own pid". */
const heldHere = new Set<string>();

export function acquireOutputLock(outputPath: string, target: string): OutputLock {
  const path = lockPathFor(outputPath);
  if (heldHere.has(path)) throw new OutputRefused(`-o ${target}: already being written by this process`);
  const me = whoAmI();
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      if (tryCreate(path, me)) return held(path);
    } catch (err) {
      throw new OutputError(target, `cannot create the lock file ${basename(path)}`, err);
    }
    const found = readLockFile(path, target);
    if (!found) continue; // released between our create and our look
    const { holder, ageMs: age } = found;
    if (!holder) {
      // Empty or torn: a process died between create and write. Old enough to be sure, take it.
      if (age > 10_000 && takeOverStale(path, { pid: -1, host: '', started: '' }, target)) continue;
      throw new OutputRefused(`-o ${target}: another spp-extract run is starting on it (lock ${path}); try again in a moment`);
    }
    if (deadHolderReason(holder, me, age) !== undefined) {
      takeOverStale(path, holder, target);
      continue; // won or lost the take-over, look again
    }
    const where = holder.host === me.host ? `pid ${holder.pid}` : `pid ${holder.pid} on host ${holder.host}`;
    const lease = holder.host === me.host && (holder.pidns ?? me.pidns) === me.pidns ? '' : `; it is taken over once its heartbeat stops for ${LEASE_MS / 60_000} minutes`;
    throw new OutputRefused(`-o ${target}: in use by another spp-extract run (${where}, since ${holder.started ?? 'an unknown time'})${lease}; ` +
      `wait for it, or if that run is dead delete ${path}`);
  }
  throw new OutputRefused(`-o ${target}: could not take the lock ${path}; try again`);
}

function held(path: string): OutputLock {
  let released = false;
  // The heartbeat: a run elsewhere (another host, another container) judges us alive by it.
  const heartbeat = setInterval(() => {
    const now = new Date();
    try {
      utimesSync(path, now, now);
    } catch {
      /* gone or unwritable: the run's own writes will say so */
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();
  heldHere.add(path);
  const release = () => {
    if (released) return;
    released = true;
    heldHere.delete(path);
    clearInterval(heartbeat);
    process.off('exit', release);
    forgetAtInterrupt();
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  };
  process.on('exit', release);
  // A signal releases it at once, before the process waits for its workers to close.
  const forgetAtInterrupt = atInterrupt(release);
  return { path, release };
}
