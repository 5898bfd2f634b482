/** A model file's content identity, and a check that the file read is the file loaded. */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';

/**
 * What changes when a file is replaced (inode) or rewritten in place (size, mtime, ctime in
 * nanoseconds, as git's index uses; ctime cannot be set back by a user).
 */
type Version = string;

export const versionOf = (st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): Version =>
  `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;

/** SHA-256 (hex) of a file's bytes, read from one descriptor, with the version of the file it read. */
export async function fileSha256(path: string): Promise<{ sha256: string; version: Version }> {
  const fh = await open(path, 'r');
  try {
    const version = versionOf(await fh.stat({ bigint: true }));
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
    return { sha256: hash.digest('hex'), version };
  } finally {
    await fh.close();
  }
}

/** The file's version now, or undefined when it is gone. */
export async function fileVersion(path: string): Promise<Version | undefined> {
  const st = await stat(path, { bigint: true }).catch(() => undefined);
  return st && versionOf(st);
}
