/**
 * Spatial Pyramid Pooling (He et al. 2014, arXiv:1406.4729) over one conv feature map.
 * Pure functions, no I/O.
 *
 * Descriptor layout (what spatialPyramidPool returns):
 *   - levels in the order given (e.g. [1, 2, 4] → the 1×1 level first);
 *   - within a level, n×n bins row-major: bin row `by`, then bin column `bx`;
 *   - within a bin, the C channels contiguous.
 * So   index = offset(level) + (by * n + bx) * C + c,
 * with offset(level) = C * Σ n'² over the levels before it, and total length C * Σ n².
 */

import { checkOption, findOption, type NormalizeMode, type PoolMode } from '../core/options.js';
import { invalidParameterError } from '../core/invalid.js';

export type { NormalizeMode, PoolMode } from '../core/options.js';

import type { FeatureMap } from '../core/types.js';

export type { FeatureMap };

/**
 * Bin i of n over a side of length a spans [floor(i*a/n), ceil((i+1)*a/n)) — the rule of
 * PyTorch's adaptive pooling and the SPP authors' code. Bins may overlap; when a < n they repeat
 * cells, and every bin is non-empty because ceil((i+1)a/n) > floor(ia/n) for a >= 1.
 * Returns [start, end).
 */
export function binRange(i: number, n: number, a: number): [number, number] {
  // Integer arithmetic, so no float rounding can shift a bin edge.
  const p = i * a;
  const q = (i + 1) * a;
  const start = (p - (p % n)) / n;
  const end = (q + n - 1 - ((q + n - 1) % n)) / n;
  return [start, end];
}

/** Length of the descriptor: C * Σ n². */
export function descriptorLength(channels: number, levels: readonly number[]): number {
  let bins = 0;
  for (const n of levels) bins += n * n;
  return channels * bins;
}

/** Throws unless `levels` is a non-empty array of positive integers ("levels must be …, got '1,0'"). */
export function validateLevels(levels: readonly number[]): void {
  checkOption(findOption('levels'), levels, 'library');
}

function validateMap(map: FeatureMap): void {
  const { data, height, width, channels } = map;
  for (const [name, v] of [['height', height], ['width', width], ['channels', channels]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`feature map ${name} must be a positive integer, got ${String(v)}`);
  }
  if (!(data instanceof Float32Array)) throw new Error('feature map data must be a Float32Array');
  if (data.length !== height * width * channels) {
    throw new Error(`feature map data has ${data.length} values, expected ${height}x${width}x${channels} = ${height * width * channels}`);
  }
}

/** Bin edges of one level along a side: starts[i], ends[i]. */
function edges(n: number, a: number): { starts: Int32Array; ends: Int32Array } {
  const starts = new Int32Array(n);
  const ends = new Int32Array(n);
  for (let i = 0; i < n; i++) [starts[i], ends[i]] = binRange(i, n, a);
  return { starts, ends };
}

/**
 * Pools `map` into a fixed-length descriptor (layout in the file comment). Max pooling propagates
 * NaN like numpy/PyTorch; average pooling sums in float64 so large bins lose no precision.
 */
export function spatialPyramidPool(map: FeatureMap, levels: readonly number[], pool: PoolMode, gemP: number = DEFAULT_GEM_P): Float32Array {
  validateLevels(levels);
  checkOption(findOption('pool'), pool, 'library');
  if (pool === 'gem') checkOption(findOption('gemP'), gemP, 'library');
  return pyramidPool(map, levels, pool, gemP);
}

/** GeM's default exponent (Radenović et al. 2018 use p = 3). */
export const DEFAULT_GEM_P = 3;
/** GeM clamps each value to at least this before the power (as the paper's code does). */
export const GEM_EPS = 1e-6;

/**
 * spatialPyramidPool with levels and pool already checked (the pipeline checks them once per run);
 * the map, which comes from the backbone, is still checked against its shape.
 */
export function pyramidPool(map: FeatureMap, levels: readonly number[], pool: PoolMode, gemP: number = DEFAULT_GEM_P): Float32Array {
  validateMap(map);
  return pyramidPoolWindow(map, { x0: 0, y0: 0, x1: map.width, y1: map.height }, levels, pool, gemP);
}

/** Cells of a feature map, ends exclusive: columns [x0, x1), rows [y0, y1). */
export interface CellWindow {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * The pyramid over a window of the map (the whole map for spatialPyramidPool, a box's cells for
 * region pooling): level n's bins split the window's width and height as binRange does. Window
 * and options already checked.
 */
export function pyramidPoolWindow(map: FeatureMap, window: CellWindow, levels: readonly number[], pool: PoolMode, gemP: number): Float32Array {
  const C = map.channels;
  const out = new Float32Array(descriptorLength(C, levels));
  const offsets: number[] = [];
  levels.reduce((o, n) => (offsets.push(o), o + n * n * C), 0);
  const bin = binPooler(map, pool, gemP);

  // Max pooling: bin i of level m is exactly the union of bins i·k … i·k+k−1 of level n = k·m
  // (their edges telescope), so a coarse level is the max over k×k blocks of a finer one already
  // computed — far cheaper than rescanning the map. Finest levels first.
  const order = levels.map((n, i) => i).sort((a, b) => levels[b] - levels[a]);
  const done = new Map<number, number>(); // level → its offset in `out`
  for (const i of order) {
    const n = levels[i];
    if (done.has(n)) {
      out.copyWithin(offsets[i], done.get(n)!, done.get(n)! + n * n * C);
      continue;
    }
    // The coarsest finer level already done: the fewest fine bins per coarse bin.
    const finer = pool === 'max' ? Math.min(...[...done.keys()].filter((f) => f % n === 0)) : Infinity;
    if (finer !== Infinity) maxFromFiner(out, done.get(finer)!, finer, offsets[i], n, C);
    else poolLevel(bin, window, n, C, out, offsets[i]);
    done.set(n, offsets[i]);
  }
  return out;
}

/**
 * One level straight from the map's cells in `window`. A window with fewer cells than bins repeats
 * cells (bin ranges come in equal neighbours), so an equal neighbour — a whole row of bins, or one
 * bin — is copied instead of pooled again: the same numbers, a fraction of the work for small boxes.
 */
function poolLevel(bin: BinPooler, window: CellWindow, n: number, C: number, out: Float32Array, offset: number): void {
  const ys = edges(n, window.y1 - window.y0);
  const xs = edges(n, window.x1 - window.x0);
  const row = n * C;
  for (let by = 0; by < n; by++) {
    const o = offset + by * row;
    if (by > 0 && ys.starts[by] === ys.starts[by - 1] && ys.ends[by] === ys.ends[by - 1]) {
      out.copyWithin(o, o - row, o);
      continue;
    }
    for (let bx = 0; bx < n; bx++) {
      const at = o + bx * C;
      if (bx > 0 && xs.starts[bx] === xs.starts[bx - 1] && xs.ends[bx] === xs.ends[bx - 1]) out.copyWithin(at, at - C, at);
      else bin(window.y0 + ys.starts[by], window.y0 + ys.ends[by], window.x0 + xs.starts[bx], window.x0 + xs.ends[bx], out, at);
    }
  }
}

/** Pools the cells [y0, y1) × [x0, x1) of an HWC map into out[o, o + C). */
export type BinPooler = (y0: number, y1: number, x0: number, x1: number, out: Float32Array, o: number) => void;

/** The bin pooler of a mode over one map, with its scratch buffers (shared with region pooling). */
export function binPooler(map: FeatureMap, pool: PoolMode, gemP: number = DEFAULT_GEM_P): BinPooler {
  const { data, width: W, channels: C } = map;
  const rowStride = W * C;
  if (pool === 'max') return (y0, y1, x0, x1, out, o) => maxPoolBin(data, rowStride, C, y0, y1, x0, x1, out, o);
  const acc = new Float64Array(C);
  if (pool === 'avg') return (y0, y1, x0, x1, out, o) => avgPoolBin(data, rowStride, C, y0, y1, x0, x1, acc, out, o);
  const top = new Float64Array(C);
  return (y0, y1, x0, x1, out, o) => gemPoolBin(data, rowStride, C, y0, y1, x0, x1, gemP, acc, top, out, o);
}

/**
 * Max over the cells [y0, y1) × [x0, x1) of an HWC map, per channel, into out[o, o + C). Seeded with
 * the bin's first cell (not -Infinity) so an all-negative bin is right. Shared with region pooling.
 */
export function maxPoolBin(
  data: Float32Array, rowStride: number, C: number, y0: number, y1: number, x0: number, x1: number, out: Float32Array, o: number,
): void {
  const first = y0 * rowStride + x0 * C;
  for (let c = 0; c < C; c++) out[o + c] = data[first + c];
  for (let y = y0; y < y1; y++) {
    for (let x = y === y0 ? x0 + 1 : x0; x < x1; x++) {
      const p = y * rowStride + x * C;
      for (let c = 0; c < C; c++) {
        const v = data[p + c];
        // `v !== v` keeps a NaN once seen (comparisons with NaN are false).
        if (v > out[o + c] || v !== v) out[o + c] = v;
      }
    }
  }
}

/** Mean over the same cells, summed in float64 (`acc`, C long, is scratch). */
export function avgPoolBin(
  data: Float32Array, rowStride: number, C: number, y0: number, y1: number, x0: number, x1: number,
  acc: Float64Array, out: Float32Array, o: number,
): void {
  acc.fill(0);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const p = y * rowStride + x * C;
      for (let c = 0; c < C; c++) acc[c] += data[p + c];
    }
  }
  const count = (y1 - y0) * (x1 - x0);
  for (let c = 0; c < C; c++) out[o + c] = acc[c] / count;
}

/**
 * Generalized mean (Radenović et al. 2018) over the same cells: (mean of max(x, 1e-6)^p)^(1/p), in
 * float64. p = 1 is the average (of values ≥ 1e-6), p → ∞ the max; negative values count as 1e-6,
 * so it suits non-negative (post-ReLU) maps. Computed as m · (mean (x'/m)^p)^(1/p) with m the bin's
 * largest x' = max(x, 1e-6): the same number, without overflow for large p. NaN propagates.
 */
export function gemPoolBin(
  data: Float32Array, rowStride: number, C: number, y0: number, y1: number, x0: number, x1: number,
  p: number, acc: Float64Array, top: Float64Array, out: Float32Array, o: number,
): void {
  top.fill(GEM_EPS);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const q = y * rowStride + x * C;
      for (let c = 0; c < C; c++) top[c] = Math.max(top[c], data[q + c]); // NaN sticks
    }
  }
  acc.fill(0);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const q = y * rowStride + x * C;
      for (let c = 0; c < C; c++) acc[c] += Math.pow(Math.max(data[q + c], GEM_EPS) / top[c], p);
    }
  }
  const count = (y1 - y0) * (x1 - x0);
  for (let c = 0; c < C; c++) {
    const m = top[c];
    out[o + c] = m === Infinity ? Infinity : m * Math.pow(acc[c] / count, 1 / p);
  }
}

/** Max-pooled level n from the finer max-pooled level f = k·n already in `out`. */
function maxFromFiner(out: Float32Array, fineOffset: number, f: number, offset: number, n: number, C: number): void {
  const k = f / n;
  let o = offset;
  for (let by = 0; by < n; by++) {
    for (let bx = 0; bx < n; bx++) {
      const first = fineOffset + (by * k * f + bx * k) * C;
      for (let c = 0; c < C; c++) out[o + c] = out[first + c];
      for (let dy = 0; dy < k; dy++) {
        for (let dx = dy === 0 ? 1 : 0; dx < k; dx++) {
          const p = fineOffset + ((by * k + dy) * f + bx * k + dx) * C;
          for (let c = 0; c < C; c++) {
            const v = out[p + c];
            if (v > out[o + c] || v !== v) out[o + c] = v;
          }
        }
      }
      o += C;
    }
  }
}

/**
 * Normalizes in place and returns `vec`. 'l2': divide by the L2 norm (an all-zero vector stays
 * zero). 'sqrt': signed square root sign(x)·sqrt(|x|), then L2 (the "power/Hellinger" trick).
 */
export function normalizeDescriptor(vec: Float32Array, mode: NormalizeMode): Float32Array {
  switch (mode) {
    case 'none':
      return vec;
    case 'sqrt':
      for (let i = 0; i < vec.length; i++) {
        const v = vec[i];
        vec[i] = v < 0 ? -Math.sqrt(-v) : Math.sqrt(v);
      }
      return l2(vec);
    case 'l2':
      return l2(vec);
    default:
      throw invalidParameterError('normalize', `one of ${findOption('normalize').choices!.join(', ')}`, mode);
  }
}

function l2(vec: Float32Array): Float32Array {
  let ss = 0; // float64 sum: float32 would lose precision over ~10^4..10^5 terms
  for (let i = 0; i < vec.length; i++) ss += vec[i] * vec[i];
  const norm = Math.sqrt(ss);
  if (norm > 0 && Number.isFinite(norm)) {
    for (let i = 0; i < vec.length; i++) vec[i] = vec[i] / norm;
  }
  return vec;
}
