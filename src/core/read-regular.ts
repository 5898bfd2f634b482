import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fileKind } from './file-kind.js';

/**
 * Opens `path` for reading only if it is a regular file (a symlink is followed to one). Non-blocking,
 * so a FIFO never hangs the open (nor the exit, which waits for a blocked open); checked on the
 * descriptor (fstat), so what is read is what was checked, not what the path points at a moment
 * later. `notRegular` words the refusal (default: what the file is instead). The caller closes `fh`.
 */
export async function openRegularForRead(
  path: string, notRegular: (path: string, kind: string) => Error = (p, kind) => new Error(`${p} is not a regular file (${kind})`),
): Promise<{ fh: FileHandle; size: number }> {
  const fh = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notRegular(path, fileKind(st));
    return { fh, size: st.size };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** The whole of a regular file; one over `maxBytes` (a /dev/zero-sized surprise) is refused before it is read. */
export async function readRegularFile(path: string, maxBytes = Infinity): Promise<Buffer> {
  const { fh, size } = await openRegularForRead(path);
  try {
    if (size > maxBytes) throw new Error(`${path} holds ${size} bytes, more than the ${maxBytes} expected`);
    return await fh.readFile();
  } finally {
    await fh.close().catch(() => undefined);
  }
}
