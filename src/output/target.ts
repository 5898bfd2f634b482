import { access, constants, lstat, readlink, realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { OutputRefused } from './errors.js';

/**
 * What `-o` names, decided before anything is written:
 * - `stdout`: `-` (and `/dev/stdout`, which means the same);
 * - `device`: an existing FIFO or character device, written in order, never replaced;
 * - `file`: a regular file or a new name; a symlink is followed to its target (written through,
 *   never replaced), so `path` may differ from what the user typed (`target`).
 */
export type OutputTarget =
  | { kind: 'stdout'; target: '-' }
  | { kind: 'device'; target: string; path: string; what: 'FIFO' | 'character device' }
  | { kind: 'file'; target: string; path: string };

const STDOUT_NAMES = new Set(['-', '/dev/stdout', '/dev/fd/1', '/proc/self/fd/1']);

export function isStdoutName(output: string): boolean {
  return STDOUT_NAMES.has(output);
}

/** Follows symlinks, dangling ones included (the file they point to is created). */
async function followLinks(path: string, target: string): Promise<string> {
  let current = path;
  for (let hops = 0; hops < 40; hops++) {
    const st = await lstat(current).catch(() => undefined);
    if (!st?.isSymbolicLink()) return current;
    const real = await realpath(current).catch(() => undefined);
    if (real) return real;
    current = resolve(dirname(current), await readlink(current));
  }
  throw new OutputRefused(`-o ${target}: too many levels of symbolic links`);
}

export async function resolveOutputTarget(output: string): Promise<OutputTarget> {
  if (isStdoutName(output)) return { kind: 'stdout', target: '-' };
  const path = await followLinks(resolve(output), output);
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory()) throw new OutputRefused(`-o ${output}: is a folder`);
  if (st?.isFIFO()) return { kind: 'device', target: output, path, what: 'FIFO' };
  if (st?.isCharacterDevice()) return { kind: 'device', target: output, path, what: 'character device' };
  if (st && !st.isFile()) throw new OutputRefused(`-o ${output}: is neither a regular file, a FIFO nor a character device`);
  const folder = dirname(path);
  const parent = await stat(folder).catch((err: NodeJS.ErrnoException) => err);
  if (parent instanceof Error) {
    const why = parent.code === 'ENOTDIR' ? 'a part of it is not a folder' : 'does not exist';
    throw new OutputRefused(`-o ${output}: folder '${dirname(output)}' ${why}`);
  }
  if (!parent.isDirectory()) throw new OutputRefused(`-o ${output}: '${dirname(output)}' is not a folder`);
  try {
    await access(folder, constants.W_OK);
  } catch {
    throw new OutputRefused(`-o ${output}: folder '${dirname(output)}' is not writable`);
  }
  return { kind: 'file', target: output, path };
}
