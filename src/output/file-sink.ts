import { rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { interruptedBySignal, unblockFifoAtInterrupt } from '../core/interrupt-cleanup.js';
import { OutputError } from './errors.js';
import { outputIo, sinkTuning } from './io.js';

/** Temporary name beside the final one, so a half-written file never sits under the final name. */
export function partialPath(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.partial`);
}

/** Names for messages: the `-o` the user typed and this file's own (final) name. */
export interface SinkLabel {
  target: string;
  file: string;
}

/**
 * Appends through a small buffer with every write checked: short writes are completed, a failed
 * write poisons the sink (nothing after it is attempted) and surfaces as an OutputError naming
 * `-o`. A `file` sink writes a temp name and `commit` syncs and renames it; a `direct` sink writes
 * straight into a FIFO or device, in order. After a kill the buffered tail is lost, which resume
 * (journal vs data length) handles.
 */
export class FileSink {
  /** Appended bytes not yet written: `used` bytes of `chunk` (a fresh chunk after each flush). */
  private chunk: Buffer | undefined;
  private used = 0;
  private lastFlush = Date.now();
  private failure: OutputError | undefined;
  private closed = false;

  private constructor(
    readonly finalPath: string,
    readonly tempPath: string | null,
    private readonly fh: FileHandle,
    private position: number,
    private readonly label: SinkLabel,
  ) {}

  static async create(finalPath: string, label: SinkLabel): Promise<FileSink> {
    const tempPath = partialPath(finalPath);
    const stopped = () => new OutputError(label.target, `cannot create ${label.file}`, new Error('stopped by a signal'));
    if (interruptedBySignal()) throw stopped();
    const fh = await outputIo().open(tempPath, 'w').catch((err) => {
      throw new OutputError(label.target, `cannot create ${label.file}`, err);
    });
    // A signal while it was being created: the process is exiting, the file would be left behind.
    if (interruptedBySignal()) {
      await outputIo().close(fh).catch(() => undefined);
      await rm(tempPath, { force: true });
      throw stopped();
    }
    return new FileSink(finalPath, tempPath, fh, 0, label);
  }

  /** Reopens a temp file, cut to `length` (its last consistent byte), for appending. */
  static async reopen(finalPath: string, length: number, label: SinkLabel): Promise<FileSink> {
    const tempPath = partialPath(finalPath);
    const fh = await outputIo().open(tempPath, 'r+').catch((err) => {
      throw new OutputError(label.target, `cannot reopen ${label.file}`, err);
    });
    const sink = new FileSink(finalPath, tempPath, fh, length, label);
    await sink.guard('cannot cut back', () => outputIo().truncate(fh, length));
    return sink;
  }

  /** A FIFO or character device: written in order, never renamed, never synced. */
  static async direct(path: string, label: SinkLabel): Promise<FileSink> {
    // A FIFO's open waits for its reader; a signal meanwhile must not hang the exit.
    const forget = unblockFifoAtInterrupt(path, 'write');
    const fh = await outputIo().open(path, 'w').catch((err) => {
      throw new OutputError(label.target, `cannot open ${label.file}`, err);
    }).finally(forget);
    return new FileSink(path, null, fh, -1, label);
  }

  /**
   * A signal stopped the process: it exits once its workers close, and what is on disk stays as the
   * signal found it (resumable), not amended with the failures of images it cut short.
   */
  private throwIfFailed(): void {
    if (!this.failure && interruptedBySignal()) this.failure = new OutputError(this.label.target, `stopped writing ${this.label.file}`, new Error('stopped by a signal'));
    if (this.failure) throw this.failure;
  }

  private async guard<T>(action: string, op: () => Promise<T>): Promise<T> {
    this.throwIfFailed();
    try {
      return await op();
    } catch (err) {
      this.failure = err instanceof OutputError ? err : new OutputError(this.label.target, `${action} ${this.label.file}`, err);
      throw this.failure;
    }
  }

  /**
   * Copies `data` into the pending chunk (callers may reuse or transfer their buffers once we
   * return): one copy per row, the chunk written whole — a region run appends ~60 KiB rows by the
   * thousand. Data larger than a chunk is written at once, after what is pending.
   */
  async append(data: Uint8Array | string): Promise<void> {
    this.throwIfFailed();
    const size = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.byteLength;
    const capacity = sinkTuning.flushBytes;
    if (this.used + size > capacity) {
      await this.flush();
      if (size > capacity) {
        const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
        await this.writeFully(buf, this.position);
        if (this.position >= 0) this.position += buf.byteLength;
        return;
      }
    }
    this.chunk ??= Buffer.allocUnsafe(capacity);
    if (typeof data === 'string') this.chunk.write(data, this.used, 'utf8');
    else this.chunk.set(data, this.used);
    this.used += size;
    if (this.used >= capacity || Date.now() - this.lastFlush >= sinkTuning.flushMs) await this.flush();
  }

  async flush(): Promise<void> {
    this.lastFlush = Date.now();
    if (this.used === 0) return;
    // A new chunk for later appends: this one is being written.
    const buf = this.chunk!.subarray(0, this.used);
    this.chunk = undefined;
    this.used = 0;
    await this.writeFully(buf, this.position);
    if (this.position >= 0) this.position += buf.byteLength;
  }

  /** Loops over short writes; a write that makes no progress is a full disk. */
  private writeFully(buf: Uint8Array, position: number): Promise<void> {
    return this.guard('cannot write', async () => {
      let done = 0;
      while (done < buf.byteLength) {
        const at = position < 0 ? null : position + done;
        const n = await outputIo().write(this.fh, buf, done, buf.byteLength - done, at);
        if (!(n > 0)) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        done += n;
      }
    });
  }

  async writeAt(data: Uint8Array, position: number): Promise<void> {
    if (this.tempPath === null) throw new Error('writeAt on a stream');
    await this.flush(); // the buffer may hold the bytes at `position` (e.g. the header)
    await this.writeFully(data, position);
  }

  /** Flushes, fsyncs and closes: the bytes are on disk, still under the temp name. */
  async seal(): Promise<void> {
    await this.flush();
    if (this.tempPath !== null) await this.guard('cannot sync', () => outputIo().fsync(this.fh));
    this.closed = true;
    await this.guard('cannot close', () => outputIo().close(this.fh));
  }

  /** Moves a sealed temp file to its final name. */
  async publish(): Promise<void> {
    if (this.tempPath === null) return;
    const temp = this.tempPath;
    await this.guard('cannot rename to', () => outputIo().rename(temp, this.finalPath));
  }

  /**
   * Removes what an earlier run left under the final name (a --force run replacing it), called once
   * every file of the new output is sealed and before the first rename: a crash between two renames
   * then never pairs new data with an old completion marker.
   */
  async dropStaleFinal(): Promise<void> {
    if (this.tempPath === null) return;
    await this.guard('cannot replace', () => rm(this.finalPath, { force: true }));
  }

  /** Makes the renames in this file's folder durable. */
  async syncFolder(): Promise<void> {
    if (this.tempPath === null) return;
    await this.guard('cannot sync the folder of', () => outputIo().fsyncDir(dirname(this.finalPath)));
  }

  async commit(): Promise<void> {
    await this.seal();
    await this.publish();
    await this.syncFolderOrUnpublish();
  }

  /**
   * The last step of a commit: if the rename cannot be made durable, take the final name back so
   * a failed run never leaves a file that claims to be complete.
   */
  async syncFolderOrUnpublish(): Promise<void> {
    try {
      await this.syncFolder();
    } catch (err) {
      if (this.tempPath !== null) await outputIo().rename(this.finalPath, this.tempPath).catch(() => undefined);
      throw err;
    }
  }

  /** After a failure: closes quietly and leaves the temp file for --resume. */
  async abandon(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.chunk = undefined;
    this.used = 0;
    await outputIo().close(this.fh).catch(() => undefined);
  }
}
