/**
 * The fit's sample on disk: each descriptor, pre-transformed, appended as float32 to a scratch file
 * beside the projection (10,000 × 26,880 floats is 1 GiB: never held in memory), the column sums
 * kept in float64 for the mean. Then read back block by block as the fit's RowSource.
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { RowSource } from './fit.js';
import { preTransform, type PreTransform } from './transform.js';
import { readUpTo } from '../core/read-fully.js';

/** The scratch file's name beside `output` (hidden, like the outputs' temp files). */
export const sampleRowsPath = (output: string) => join(dirname(output), `.${basename(output)}.rows.partial`);

/** Rows flushed per write. */
const FLUSH_ROWS = 16;

export class SampleRows {
  private rows = 0;
  private readonly sums: Float64Array;
  private pending: Buffer;
  private pendingRows = 0;

  private constructor(readonly path: string, private readonly fh: FileHandle, readonly dim: number, private readonly pre: PreTransform) {
    this.sums = new Float64Array(dim);
    this.pending = Buffer.alloc(FLUSH_ROWS * dim * 4);
  }

  /** Creates (replacing) the scratch file. */
  static async create(path: string, dim: number, pre: PreTransform): Promise<SampleRows> {
    return new SampleRows(path, await open(path, 'w+'), dim, pre);
  }

  get count(): number {
    return this.rows;
  }

  async add(descriptor: Float32Array): Promise<void> {
    if (descriptor.length !== this.dim) throw new RangeError(`a sample row of ${descriptor.length} values, expected ${this.dim}`);
    const at = this.pendingRows * this.dim;
    const view = new Float32Array(this.pending.buffer, this.pending.byteOffset, FLUSH_ROWS * this.dim);
    const row = preTransform(descriptor, this.pre, view.subarray(at, at + this.dim));
    for (let j = 0; j < this.dim; j++) this.sums[j] += row[j];
    this.rows++;
    if (++this.pendingRows === FLUSH_ROWS) await this.flush();
  }

  private async flush(): Promise<void> {
    const bytes = this.pendingRows * this.dim * 4;
    let done = 0;
    const position = (this.rows - this.pendingRows) * this.dim * 4;
    while (done < bytes) done += (await this.fh.write(this.pending, done, bytes - done, position + done)).bytesWritten;
    this.pendingRows = 0;
  }

  /** The rows gathered, for the fit (read back from the file). */
  async source(): Promise<RowSource> {
    await this.flush();
    const mean = Float64Array.from(this.sums, (s) => s / Math.max(1, this.rows));
    const { fh, dim, path } = this;
    return {
      rows: this.rows, dim, mean,
      async read(start, count, into) {
        const bytes = count * dim * 4;
        const buf = Buffer.from(into.buffer, into.byteOffset, bytes);
        const got = await readUpTo(fh, buf, bytes, start * dim * 4);
        if (got !== bytes) throw new Error(`${path}: the sample file shrank while the fit read it`);
      },
    };
  }

  /** Closes and deletes the scratch file. */
  async remove(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await rm(this.path, { force: true });
  }
}

