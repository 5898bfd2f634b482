/**
 * bench:pca's fit child (section B): fits K components on the first N rows of a float32 .npy
 * matrix in a fresh process, so its peak RSS is the fit's own, and prints one JSON line.
 *
 *   node dist/scripts/bench/pca-fit-child.js MATRIX.npy N K THREADS [COMPONENTS_OUT.f32]
 *
 * The RowSource reads row blocks with fs from the file. fitPcaRows wants the column means up
 * front (the CLI sums them while it gathers the sample), so a first pass over the N rows computes
 * them here, in float64, one fit-sized block at a time; it is timed apart (meanS) from fitPcaRows (fitS).
 */
import { openSync, readSync, closeSync, writeFileSync } from 'node:fs';
import { BLOCK_BYTES, fitPcaRows, type RowSource } from '../../src/pca/fit.js';

const [file, nArg, kArg, threadsArg, componentsOut] = process.argv.slice(2);
if (!file || !nArg || !kArg || !threadsArg) throw new Error('usage: pca-fit-child.js MATRIX.npy N K THREADS [COMPONENTS_OUT]');
const n = Number(nArg);
const k = Number(kArg);
const threads = Number(threadsArg);

/** The .npy header: little-endian float32, C order, its shape and where the data starts. */
function npyHeader(fd: number): { rows: number; dim: number; offset: number } {
  const head = Buffer.alloc(16);
  readSync(fd, head, 0, 16, 0);
  if (head.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = head[6]!;
  const len = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const text = Buffer.alloc(len);
  readSync(fd, text, 0, len, start);
  const h = text.toString('latin1');
  if (!/'descr':\s*'<f4'/.test(h) || /'fortran_order':\s*True/.test(h)) throw new Error(`${file}: expected a C-order <f4 matrix, got ${h}`);
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(h);
  if (!shape) throw new Error(`${file}: no 2-D shape in ${h}`);
  return { rows: Number(shape[1]), dim: Number(shape[2]), offset: start + len };
}

function readRows(fd: number, offset: number, dim: number, start: number, count: number, into: Float32Array): void {
  const bytes = count * dim * 4;
  const buf = Buffer.from(into.buffer, into.byteOffset, bytes);
  let done = 0;
  while (done < bytes) {
    const got = readSync(fd, buf, done, bytes - done, offset + start * dim * 4 + done);
    if (got === 0) throw new Error(`${file}: short read`);
    done += got;
  }
}

/** The first pass: column means of the N rows in float64 (its block is garbage once it returns). */
function columnMeans(fd: number, offset: number, dim: number, blockRows: number): Float64Array {
  const mean = new Float64Array(dim);
  const block = new Float32Array(blockRows * dim);
  for (let start = 0; start < n; start += blockRows) {
    const count = Math.min(blockRows, n - start);
    readRows(fd, offset, dim, start, count, block);
    for (let i = 0; i < count; i++) {
      const row = i * dim;
      for (let j = 0; j < dim; j++) mean[j] += block[row + j]!;
    }
  }
  for (let j = 0; j < dim; j++) mean[j] /= n;
  return mean;
}

const fd = openSync(file, 'r');
try {
  const { rows, dim, offset } = npyHeader(fd);
  if (n > rows) throw new Error(`${file} has ${rows} rows, asked for ${n}`);
  const blockRows = Math.max(1, Math.min(n, Math.floor(BLOCK_BYTES / (4 * dim))));
  const t0 = performance.now();
  const mean = columnMeans(fd, offset, dim, blockRows);
  const t1 = performance.now();
  const source: RowSource = {
    rows: n, dim, mean,
    read: async (start, count, into) => readRows(fd, offset, dim, start, count, into),
  };
  const fit = await fitPcaRows(source, { k, threads });
  const t2 = performance.now();
  if (componentsOut) writeFileSync(componentsOut, new Uint8Array(fit.components.buffer, fit.components.byteOffset, fit.components.byteLength));
  console.log(JSON.stringify({
    n, dim, k, threads, blockRows,
    meanS: (t1 - t0) / 1000,
    fitS: (t2 - t1) / 1000,
    maxRssKiB: process.resourceUsage().maxRSS,
    explainedVariance: Array.from(fit.explainedVariance),
    totalVariance: fit.totalVariance,
  }));
} finally {
  closeSync(fd);
}
