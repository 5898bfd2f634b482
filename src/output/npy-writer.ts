import { NPY_HEADER_BYTES, float32ToFloat16Bits, npyHeader, type NpyDtype } from '../npy.js';
import { FileSink } from './file-sink.js';
import { ManifestWriter, manifestPathFor } from './manifest.js';
import type { ResumePoint } from './resume.js';
import type { FailureRecord, OutputWriter, RowRecord, RunHeader, RunSummary } from './records.js';

/**
 * Streams rows into a .npy (C order, shape [N, D]): a fixed-size header is written first with
 * N = 0 and rewritten with the final N at close, so memory does not grow with N. The row → path
 * map and failures go to a JSONL manifest beside it.
 */
export class NpyWriter implements OutputWriter {
  private constructor(
    private readonly data: FileSink,
    private readonly manifest: ManifestWriter,
    private readonly dim: number,
    private readonly dtype: NpyDtype,
    private rows = 0,
  ) {}

  static async create(path: string, header: RunHeader): Promise<NpyWriter> {
    const dtype: NpyDtype = header.dtype === 'float16' ? '<f2' : '<f4';
    const data = await FileSink.create(path);
    await data.append(npyHeader(dtype, [0, header.dim]));
    const manifest = await ManifestWriter.create(manifestPathFor(path), header);
    return new NpyWriter(data, manifest, header.dim, dtype);
  }

  /** Continues an interrupted run from the point `findResumePoint` established. */
  static async resume(path: string, header: RunHeader, at: ResumePoint): Promise<NpyWriter> {
    const data = await FileSink.reopen(path, at.npyBytes);
    const manifest = await ManifestWriter.reopen(manifestPathFor(path), at.manifestBytes);
    return new NpyWriter(data, manifest, header.dim, header.dtype === 'float16' ? '<f2' : '<f4', at.rows);
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

  async close(summary: RunSummary): Promise<void> {
    const header = npyHeader(this.dtype, [this.rows, this.dim]);
    if (header.length !== NPY_HEADER_BYTES) throw new Error('npy header size changed');
    await this.data.writeAt(header, 0);
    await this.manifest.close(summary);
    await this.data.commit();
  }
}
