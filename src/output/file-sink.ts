import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Temporary name beside the final one, so a half-written file never sits under the final name. */
export function partialPath(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.partial`);
}

/** Appends to a temp file; `commit` syncs and renames it to the final name. */
export class FileSink {
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

  get bytesWritten(): number {
    return this.position;
  }

  async append(data: Uint8Array | string): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await this.fh.write(buf, 0, buf.byteLength, this.position);
    this.position += buf.byteLength;
  }

  async writeAt(data: Uint8Array, position: number): Promise<void> {
    await this.fh.write(data, 0, data.byteLength, position);
  }

  async commit(): Promise<void> {
    await this.fh.sync();
    await this.fh.close();
    await rename(this.tempPath, this.finalPath);
  }

  async discard(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await rm(this.tempPath, { force: true });
  }
}
