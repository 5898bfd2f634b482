import type { FileHandle } from 'node:fs/promises';
import { openRegularForRead } from '../core/read-regular.js';
import { readUpTo } from '../core/read-fully.js';

/** A file the tool reads as its own state (a journal, a manifest, a shard) is not a regular file. */
export class NotRegularFile extends Error {
  constructor(readonly path: string, what: string) {
    super(`${path} is not a regular file (${what}); refusing to read it`);
    this.name = 'NotRegularFile';
  }
}

/** core/read-regular.ts's opener, refusing with NotRegularFile (the tool's own state files). */
export function openRegularFile(path: string): Promise<{ fh: FileHandle; size: number }> {
  return openRegularForRead(path, (p, kind) => new NotRegularFile(p, kind));
}

/** Reads exactly `length` bytes at `position`; a short read (the file shrank or lies) is an error naming it. */
export async function readExactly(fh: FileHandle, path: string, buf: Buffer, length: number, position: number): Promise<void> {
  const done = await readUpTo(fh, buf, length, position);
  if (done < length) throw new Error(`${path}: short read: ${done} of ${length} bytes at offset ${position} (the file is shorter than it claims, or changed while being read)`);
}
