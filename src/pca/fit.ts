/**
 * PCA of N rows of D columns without ever holding the N×D matrix: randomized subspace iteration
 * (Halko, Martinsson & Tropp 2011, Alg. 4.4; scikit-learn's `svd_solver='randomized'`) streaming
 * row blocks of the sample from disk. Each pass reads every block once and computes, with
 * Xc = X − mean, both M = XcᵀXc·Z and G = Zᵀ·XcᵀXc·Z on ONNX Runtime (kernel.ts); between passes
 * Z = orth(M) (shifted Cholesky QR in float64). The last pass's G gives the Rayleigh–Ritz
 * components Z·W. Memory: one block (≤ BLOCK_BYTES) plus a few D×L matrices, whatever N is.
 */
import { openFitKernel, type FitKernel } from './kernel.js';
import { cholesky, gaussian, invertUpper, symmetricEigen } from './linalg.js';

/** Rows to fit on, read block by block (a temp file of float32 rows, or memory in tests). */
export interface RowSource {
  readonly rows: number;
  readonly dim: number;
  /** Column means of all rows (float64, computed as the rows were gathered). */
  readonly mean: Float64Array;
  /** Copies rows [start, start + count) into `into` (row-major float32). */
  read(start: number, count: number, into: Float32Array): Promise<void>;
}

export interface PcaOptions {
  /** Components to keep (K). */
  k: number;
  /** Extra basis vectors beyond K (scikit-learn's n_oversamples, default 10). */
  oversamples?: number;
  /** Passes over the rows; default scikit-learn's rule: n_iter (7, or 4 when K ≥ 0.1·min(N, D)) + 1. */
  passes?: number;
  seed?: number;
  threads?: number;
  /** Rows per block: default what fits BLOCK_BYTES. */
  blockRows?: number;
  onPass?: (pass: number, passes: number) => void;
  signal?: AbortSignal;
}

export interface PcaResult {
  mean: Float32Array;
  /** K×D, unit rows, each flipped so its largest-magnitude entry is positive (scikit-learn's convention). */
  components: Float32Array;
  /** Variance along each component (N − 1 denominator), descending. */
  explainedVariance: Float32Array;
  /** Sum of the D column variances: explainedVariance / totalVariance is the share kept. */
  totalVariance: number;
  rows: number;
}

/** A row block's bytes: bounds the fit's memory whatever N and D are. */
export const BLOCK_BYTES = 64 * 2 ** 20;

/** How many passes scikit-learn's rule gives (n_iter 'auto', plus the pass that forms the small matrix). */
export function defaultPasses(k: number, rows: number, dim: number): number {
  return (k < 0.1 * Math.min(rows, dim) ? 7 : 4) + 1;
}

export class PcaFitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PcaFitError';
  }
}

export async function fitPcaRows(source: RowSource, o: PcaOptions): Promise<PcaResult> {
  const { rows: n, dim: d } = source;
  const k = o.k;
  if (!(Number.isSafeInteger(k) && k >= 1)) throw new RangeError(`k must be a positive integer, got ${k}`);
  if (n < 2) throw new PcaFitError(`a PCA needs at least 2 rows, got ${n}`);
  if (k > Math.min(n - 1, d)) {
    throw new PcaFitError(`${k} components need more than ${k} rows and at least ${k} columns; the sample has ${n} rows of ${d}`);
  }
  const basis = Math.min(k + (o.oversamples ?? 10), d, n);
  const passes = Math.max(1, o.passes ?? defaultPasses(k, n, d));
  const blockRows = Math.max(1, Math.min(n, o.blockRows ?? Math.floor(BLOCK_BYTES / (4 * d))));
  const kernel = await openFitKernel(d, basis, o.threads ?? 1);
  try {
    const mean = Float32Array.from(source.mean);
    let z = await orthonormalize(kernel, randomBasis(d, basis, o.seed ?? 0), d, basis);
    const block = new Float32Array(blockRows * d);
    const zeros = new Float32Array(d * basis);
    let g = new Float64Array(basis * basis);
    let squares = 0;
    for (let pass = 1; pass <= passes; pass++) {
      o.onPass?.(pass, passes);
      let m: Float32Array = zeros;
      g = new Float64Array(basis * basis);
      squares = 0;
      for (let start = 0; start < n; start += blockRows) {
        if (o.signal?.aborted) throw o.signal.reason ?? new Error('aborted');
        const count = Math.min(blockRows, n - start);
        await source.read(start, count, block);
        const out = await kernel.passBlock(block, count, mean, z, m);
        m = out.m;
        for (let i = 0; i < g.length; i++) g[i] += out.g[i];
        squares += out.squares;
      }
      if (pass < passes) z = await orthonormalize(kernel, Float64Array.from(m), d, basis);
    }
    const { components, variances } = await rayleighRitz(kernel, z, g, d, basis, k);
    return {
      mean,
      components,
      explainedVariance: Float32Array.from(variances, (v) => Math.max(0, v) / (n - 1)),
      totalVariance: squares / (n - 1),
      rows: n,
    };
  } finally {
    await kernel.dispose();
  }
}

function randomBasis(d: number, basis: number, seed: number): Float64Array {
  const next = gaussian(seed);
  return Float64Array.from({ length: d * basis }, next);
}

/**
 * An orthonormal basis of A's columns (d×basis), as float32 for the next pass: shifted Cholesky QR
 * then one more Cholesky QR (Fukaya et al. 2020, "shifted CholeskyQR3"), columns scaled to unit norm
 * first. The shift keeps Cholesky from breaking down when A is rank-deficient (duplicate rows).
 */
async function orthonormalize(kernel: FitKernel, a: Float64Array, d: number, basis: number): Promise<Float32Array> {
  scaleColumns(a, d, basis);
  let q = a;
  for (const shifted of [true, false, false]) {
    const s = await kernel.gram(q, d, basis);
    let trace = 0;
    for (let i = 0; i < basis; i++) trace += s[i * basis + i];
    // All rows equal to the mean: M is zero, and no shift of a zero trace would ever be tried.
    if (!(trace > 0)) throw new PcaFitError('the sample rows have no variance to fit');
    let extra = shifted ? 11 * (d * basis + basis * (basis + 1)) * 2 ** -53 * trace : 0;
    let r = cholesky(plusDiagonal(s, basis, extra), basis);
    while (r === undefined) {
      extra = Math.max(extra * 10, 1e-12 * trace);
      if (!(extra <= trace)) throw new PcaFitError('the sample rows have no variance to fit');
      r = cholesky(plusDiagonal(s, basis, extra), basis);
    }
    q = await kernel.matmul(q, d, basis, invertUpper(r, basis), basis);
  }
  return Float32Array.from(q);
}

function plusDiagonal(s: Float64Array, n: number, extra: number): Float64Array {
  const out = Float64Array.from(s);
  for (let i = 0; i < n; i++) out[i * n + i] += extra;
  return out;
}

function scaleColumns(a: Float64Array, rows: number, cols: number): void {
  const norms = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) norms[j] += a[i * cols + j] ** 2;
  const inv = Array.from(norms, (v) => (v > 0 ? 1 / Math.sqrt(v) : 0));
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) a[i * cols + j] *= inv[j];
}

/**
 * Components from the basis Z the last pass used and G = Zᵀ·XcᵀXc·Z: the eigenvectors of G in the
 * metric S = ZᵀZ (≈ I; S^-1/2 drops directions Z does not span, so a sample of rank < K is caught).
 */
async function rayleighRitz(kernel: FitKernel, z: Float32Array, g: Float64Array, d: number, basis: number, k: number) {
  const z64 = Float64Array.from(z);
  const s = symmetricEigen(await kernel.gram(z64, d, basis), basis);
  const kept = [...s.values.keys()].filter((i) => s.values[i] > 1e-8 * s.values[0]);
  const r = kept.length;
  // T = U_r Σ_r^-1/2 (basis×r): Z·T is orthonormal.
  const t = new Float64Array(basis * r);
  kept.forEach((col, j) => {
    const w = 1 / Math.sqrt(s.values[col]);
    for (let i = 0; i < basis; i++) t[i * r + j] = s.vectors[i * basis + col] * w;
  });
  const gt = multiply(g, basis, basis, t, r);
  const small = multiply(transpose(t, basis, r), r, basis, gt, r);
  symmetrize(small, r);
  const e = symmetricEigen(small, r);
  const rank = [...e.values].filter((v) => v > 1e-10 * Math.max(e.values[0], 0)).length;
  if (rank < k) throw new PcaFitError(`the sample spans only ${rank} dimensions: fit at most ${rank} components`);
  // Coefficients of the K components in Z's columns: T·W[:, :K] (basis×K).
  const wk = new Float64Array(r * k);
  for (let i = 0; i < r; i++) for (let j = 0; j < k; j++) wk[i * k + j] = e.vectors[i * r + j];
  const coef = multiply(t, basis, r, wk, k);
  const v = await kernel.matmul(z64, d, basis, coef, k); // d×k
  const components = new Float32Array(k * d);
  for (let j = 0; j < k; j++) {
    let big = 0;
    let norm = 0;
    for (let i = 0; i < d; i++) {
      const x = v[i * k + j];
      norm += x * x;
      if (Math.abs(x) > Math.abs(big)) big = x;
    }
    const f = (big < 0 ? -1 : 1) / Math.sqrt(norm);
    for (let i = 0; i < d; i++) components[j * d + i] = v[i * k + j] * f;
  }
  return { components, variances: e.values.subarray(0, k) };
}

function multiply(a: Float64Array, m: number, kk: number, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < kk; p++) {
      const x = a[i * kk + p];
      if (x === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += x * b[p * n + j];
    }
  }
  return c;
}

function transpose(a: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

function symmetrize(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = (a[i * n + j] + a[j * n + i]) / 2;
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
}

/** Rows in memory (tests, small fits): the mean is computed here. */
export function memoryRows(data: Float32Array, rows: number, dim: number): RowSource {
  const mean = new Float64Array(dim);
  for (let i = 0; i < rows; i++) for (let j = 0; j < dim; j++) mean[j] += data[i * dim + j];
  for (let j = 0; j < dim; j++) mean[j] /= rows;
  return {
    rows, dim, mean,
    read: async (start, count, into) => into.set(data.subarray(start * dim, (start + count) * dim)),
  };
}
