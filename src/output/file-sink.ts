import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Temporary name beside the final one, so a half-written file never sits under the final name. */
export function partialPath(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.partial`);
}

/** Bytes gathered before one write: two small awaited writes per row cost more than the row's SPP. */
const FLUSH_BYTES = 1 << 20;
/** …but the file on disk (what a resume after a kill finds) never lags by more than this. */
const FLUSH_MS = 200;

/**
 * Appends to a temp file through a small buffer; `commit` flushes, syncs and renames it to the
 * final name. After a kill the buffered tail is lost, which resume (manifest vs .npy length) handles.
 */
export class FileSink {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private lastFlush = Date.now();

  private constructor(
    readonly finalPath: string,
    readonly tempPath: string,
    private readonly fh: FileHandle,
    private position: number,
  ) {}

  static async create(finalPath: string): Promise<FileSink> {
    const tempPath = partialPath(finalPath);
    const fh = await open(tempPath, 'w');
    return new FileSink(finalPath, tempPath, fh, 0);
  }

  /** Reopens an interrupted run's temp file, cut to `length` (its last consistent byte), for appending. */
  static async reopen(finalPath: string, length: number): Promise<FileSink> {
    const tempPath = partialPath(finalPath);
    const fh = await open(tempPath, 'r+');
    await fh.truncate(length);
    return new FileSink(finalPath, tempPath, fh, length);
  }

  async append(data: Uint8Array | string): Promise<void> {
    // Copy: callers may reuse or transfer their buffers once we return.
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    this.chunks.push(buf);
    this.buffered += buf.byteLength;
    if (this.buffered >= FLUSH_BYTES || Date.now() - this.lastFlush >= FLUSH_MS) await this.flush();
  }

  async flush(): Promise<void> {
    this.lastFlush = Date.now();
    if (this.buffered === 0) return;
    const buf = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    await this.fh.write(buf, 0, buf.byteLength, this.position);
    this.position += buf.byteLength;
  }

  async writeAt(data: Uint8Array, position: number): Promise<void> {
    await this.flush(); // the buffer may hold the bytes at `position` (e.g. the header)
    await this.fh.write(data, 0, data.byteLength, position);
  }

  async commit(): Promise<void> {
    await this.flush();
    await this.fh.sync();
    await this.fh.close();
    await rename(this.tempPath, this.finalPath);
  }

  async discard(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await rm(this.tempPath, { force: true });
  }
}
