import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fileKind } from '../core/file-kind.js';
import { readUpTo } from '../core/read-fully.js';

/** A file the tool reads as its own state (a journal, a manifest, a shard) is not a regular file. */
export class NotRegularFile extends Error {
  constructor(readonly path: string, what: string) {
    super(`${path} is not a regular file (${what}); refusing to read it`);
    this.name = 'NotRegularFile';
  }
}

/**
 * Opens `path` for reading only if it is a regular file. Non-blocking, so a FIFO never hangs the
 * open; checked on the descriptor (fstat), so what is read is what was checked, not what the path
 * points at a moment later. The caller closes `fh`.
 */
export async function openRegularFile(path: string): Promise<{ fh: FileHandle; size: number }> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new NotRegularFile(path, fileKind(st));
    return { fh, size: st.size };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** Reads exactly `length` bytes at `position`; a short read (the file shrank or lies) is an error naming it. */
export async function readExactly(fh: FileHandle, path: string, buf: Buffer, length: number, position: number): Promise<void> {
  const done = await readUpTo(fh, buf, length, position);
  if (done < length) throw new Error(`${path}: short read: ${done} of ${length} bytes at offset ${position} (the file is shorter than it claims, or changed while being read)`);
}
