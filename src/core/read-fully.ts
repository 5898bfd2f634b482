import type { FileHandle } from 'node:fs/promises';

/**
 * Reads into `buf` until `length` bytes are there or the file ends, from `position` on; returns how
 * many came (fewer: the file is shorter than its caller was told). Each caller words that itself.
 */
export async function readUpTo(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}
