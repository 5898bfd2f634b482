import { open, rename, type FileHandle } from 'node:fs/promises';

/**
 * Every filesystem operation the output layer performs goes through this table, so tests can make
 * the k-th open / write / fsync / rename fail (the SQLite way) without touching a real disk.
 */
export interface OutputIo {
  open(path: string, flags: string): Promise<FileHandle>;
  /** Returns the bytes actually written (may be fewer than asked: callers loop). */
  write(fh: FileHandle, buf: Uint8Array, offset: number, length: number, position: number | null): Promise<number>;
  fsync(fh: FileHandle): Promise<void>;
  truncate(fh: FileHandle, length: number): Promise<void>;
  close(fh: FileHandle): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** fsync of a directory, so a rename inside it survives a power cut. */
  fsyncDir(dir: string): Promise<void>;
}

export const nodeIo: OutputIo = {
  open: (path, flags) => open(path, flags),
  write: async (fh, buf, offset, length, position) => (await fh.write(buf, offset, length, position)).bytesWritten,
  fsync: (fh) => fh.sync(),
  truncate: (fh, length) => fh.truncate(length),
  close: (fh) => fh.close(),
  rename: (from, to) => rename(from, to),
  fsyncDir: async (dir) => {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } catch (err) {
      // Some filesystems refuse fsync on a directory; the data files themselves were synced.
      if (!['EINVAL', 'ENOTSUP', 'EISDIR', 'EBADF'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    } finally {
      await fh.close();
    }
  },
};

let current: OutputIo = nodeIo;

export function outputIo(): OutputIo {
  return current;
}

/** Test seam: swaps the operations table; returns a function that restores the previous one. */
export function setOutputIo(io: OutputIo): () => void {
  const before = current;
  current = io;
  return () => {
    current = before;
  };
}

/** Bytes gathered before one write: two small awaited writes per row cost more than the row's SPP. */
export const sinkTuning = { flushBytes: 1 << 20, flushMs: 200 };
