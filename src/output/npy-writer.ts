import { basename } from 'node:path';
import { NPY_HEADER_BYTES, float32ToFloat16Bits, npyDtypeOf, npyHeader, type NpyDtype } from './npy.js';
import { FileSink } from './file-sink.js';
import { ManifestWriter, manifestPathFor } from './manifest.js';
import type { FailureRecord, OutputWriter, RowRecord, RunHeader, RunSummary } from './records.js';

/** Where an interrupted .npy run goes on: byte lengths to cut both temp files back to. */
export interface NpyResumeAt { rows: number; dataBytes: number; journalBytes: number }

/**
 * Streams rows into a .npy (C order, shape [N, D]): a fixed-size header is written first with
 * N = 0 and rewritten with the final N at close, so memory does not grow with N. The row → path
 * map and failures go to a JSONL manifest beside it (the journal a resume reads).
 */
export class NpyWriter implements OutputWriter {
  private constructor(
    private readonly data: FileSink,
    private readonly manifest: ManifestWriter,
    private readonly dim: number,
    private readonly dtype: NpyDtype,
    private rows = 0,
  ) {}

  /** `path` is where the bytes go (a symlink's target); `target` is the `-o` the user typed. */
  static async create(path: string, header: RunHeader, target = path): Promise<NpyWriter> {
    const dtype = npyDtypeOf(header.dtype);
    const data = await FileSink.create(path, { target, file: basename(path) });
    let manifest: ManifestWriter;
    try {
      await data.append(npyHeader(dtype, [0, header.dim]));
      // On disk before the manifest exists: a resume reads the rows on disk from it, so a header lost
      // with the first buffered rows (a failed write) would leave a run it refuses to continue.
      await data.flush();
      manifest = await ManifestWriter.create(manifestPathFor(path), header, target);
    } catch (err) {
      await data.abandon();
      throw err;
    }
    return new NpyWriter(data, manifest, header.dim, dtype);
  }

  /** Continues an interrupted run from the point resume.ts established. */
  static async resume(path: string, header: RunHeader, at: NpyResumeAt, target = path): Promise<NpyWriter> {
    const data = await FileSink.reopen(path, at.dataBytes, { target, file: basename(path) });
    let manifest: ManifestWriter;
    try {
      manifest = await ManifestWriter.reopen(manifestPathFor(path), at.journalBytes, target);
    } catch (err) {
      await data.abandon();
      throw err;
    }
    return new NpyWriter(data, manifest, header.dim, npyDtypeOf(header.dtype), at.rows);
  }

  get paths(): readonly string[] {
    return [this.data.finalPath, this.manifest.path];
  }

  async row(rec: RowRecord): Promise<void> {
    if (rec.descriptor.length !== this.dim) {
      throw new Error(`descriptor of ${rec.path} has length ${rec.descriptor.length}, expected ${this.dim}`);
    }
    const d = rec.descriptor;
    const bytes = this.dtype === '<f2'
      ? new Uint8Array(float32ToFloat16Bits(d).buffer)
      : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    await this.rawRow(rec, bytes);
  }

  /** A row already encoded in this file's dtype (merging shards copies bytes, no re-rounding). */
  async rawRow(rec: Omit<RowRecord, 'descriptor'>, bytes: Uint8Array): Promise<void> {
    await this.data.append(bytes);
    await this.manifest.row(this.rows, rec);
    this.rows++;
  }

  async failure(rec: FailureRecord): Promise<void> {
    await this.manifest.failure(rec);
  }

  /**
   * Data first, then the journal that vouches for it, each synced before its rename; the manifest
   * (the completion marker) is renamed last and the folder synced, so a final name never sits on a
   * short file.
   */
  async close(summary: RunSummary): Promise<void> {
    const header = npyHeader(this.dtype, [this.rows, this.dim]);
    if (header.length !== NPY_HEADER_BYTES) throw new Error('npy header size changed');
    await this.data.writeAt(header, 0);
    await this.data.seal();
    await this.manifest.summary(summary);
    await this.manifest.sink.seal();
    await this.manifest.sink.dropStaleFinal();
    await this.data.publish();
    await this.manifest.sink.publish();
    await this.manifest.sink.syncFolderOrUnpublish();
  }

  async abandon(): Promise<void> {
    await Promise.all([this.data.abandon(), this.manifest.sink.abandon()]);
  }
}
