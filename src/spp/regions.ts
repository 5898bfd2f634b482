/**
 * Region descriptors from one forward pass — SPP-net's own trick (He et al. 2014, §4) with Fast
 * R-CNN's RoI pooling bins: map each box onto the conv feature map, then apply the SPP levels
 * inside that window. Pure functions, no I/O.
 *
 *   clipBox       box → clipped to the image, or why it cannot be pooled (the failure record's reason)
 *   mapBoxToCells box in image pixels → window of map cells (edges snapped to cell boundaries; roi_pool's rounding, end exclusive)
 *   poolWindow    window → descriptor, same layout as spatialPyramidPool, RoIPool's bins; max/avg/GeM
 *   gridBoxes     --grid RxC → boxes tiling the image
 *
 * Coordinates. A box is [x0, y0, x1, y1] in pixels of the image *as displayed* (EXIF orientation
 * applied, the orientation the decoder hands on), x to the right, y down, (0, 0) the top-left
 * corner of the top-left pixel; [0, 0, width, height] is the whole image. A window is a range of
 * map cells, {x0, y0, x1, y1} with the ends exclusive.
 *
 * Checked against torchvision 0.14's roi_pool (fixtures/roi-golden.json, scripts/roi_golden.py).
 */

import { checkOption, findOption, type NormalizeMode, type PoolMode } from '../core/options.js';
import { DEFAULT_GEM_P, GEM_EPS, normalizeDescriptor, pyramidPoolWindow, validateLevels, type CellWindow, type FeatureMap } from './spp.js';

/** [x0, y0, x1, y1] in image pixels (as displayed). */
export type Box = readonly [x0: number, y0: number, x1: number, y1: number];

export interface Size {
  width: number;
  height: number;
}

export type { CellWindow };

export { DEFAULT_GEM_P, GEM_EPS };

export type ClipFailure = 'not-finite' | 'inverted' | 'empty' | 'outside';

export type ClipResult =
  | { ok: true; box: Box; clipped: boolean }
  | { ok: false; reason: ClipFailure; message: string };

const show = (box: Box) => `[${box.join(', ')}]`;

function checkSize(what: string, s: Size): void {
  for (const [k, v] of [['width', s.width], ['height', s.height]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${what} ${k} must be a positive integer, got ${String(v)}`);
  }
}

/**
 * Clips `box` to the image [0, width] × [0, height]. Fails — with a reason for that box's failure
 * record — when a coordinate is not a finite number ('not-finite'), x1 < x0 or y1 < y0
 * ('inverted'), x1 = x0 or y1 = y0 ('empty', zero area), or nothing of it lies inside the image
 * ('outside'; touching an edge only counts as outside). `clipped` says whether clipping moved it.
 */
export function clipBox(box: Box, image: Size): ClipResult {
  checkSize('image', image);
  if (box.length !== 4 || !box.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    return { ok: false, reason: 'not-finite', message: `box ${show(box)} must be 4 finite numbers [x0, y0, x1, y1]` };
  }
  const [x0, y0, x1, y1] = box;
  if (x1 < x0 || y1 < y0) {
    return { ok: false, reason: 'inverted', message: `box ${show(box)} is inverted: need x0 <= x1 and y0 <= y1` };
  }
  if (x1 === x0 || y1 === y0) return { ok: false, reason: 'empty', message: `box ${show(box)} is empty (zero width or height)` };
  const c: Box = [Math.max(x0, 0), Math.max(y0, 0), Math.min(x1, image.width), Math.min(y1, image.height)];
  if (c[2] <= c[0] || c[3] <= c[1]) {
    return { ok: false, reason: 'outside', message: `box ${show(box)} lies outside the ${image.width}×${image.height} image` };
  }
  return { ok: true, box: c, clipped: c.some((v, i) => v !== box[i]) };
}

/**
 * The window of map cells a box covers: each edge snaps to the nearest cell boundary, then the
 * window is clipped to the map and never less than one cell. `image` is the original's size as
 * displayed (EXIF orientation applied: a 90°-rotated 4000×3000 JPEG is 3000×4000), `input` the size
 * fed to the backbone (after the size policy), `map` the backbone's feature map. Per axis (x):
 *
 *   f  = input.width / image.width       the resize factor: original pixels → pixels fed to the backbone
 *   s  = map.width / input.width         map cells per input pixel (1 / the map's effective stride);
 *                                        roi_pool's spatial_scale, here one per axis
 *   a  = round(box.x0 · f · s)           float64, left to right; halves round up (see axis())
 *   b  = round(box.x1 · f · s)           the end, exclusive
 *   x0 = clamp(a, 0, W − 1)
 *   x1 = clamp(b, x0 + 1, W)             ≥ 1 cell
 *
 * This is torchvision.ops.roi_pool's RoI (Fast R-CNN's RoIPool) with an exclusive end: roi_pool
 * (torchvision/csrc/ops/cpu/roi_pool_kernel.cpp) takes roi_start = round(x1·scale),
 * roi_end = round(x2·scale) and pools [roi_start, roi_end] *inclusive*, so its windows grow by one
 * cell: the left quadrant of a 2×2 mosaic would take in a column of its neighbour, and the tiles of
 * a grid would share a cell. Measured on 2×2 mosaics of photos of four classes (npm run
 * bench:regions), the inclusive end cost 4.4 points of 1-NN accuracy, the exclusive one 0.8. The
 * golden values (scripts/roi_golden.py) give roi_pool the box with its end moved in by one cell,
 * which is our window. Other differences, all deliberate:
 *   - we clip the window first and bin inside it, so the whole-image box (round(W_in · W/W_in) = W)
 *     bins over the map's own cells and gives spatialPyramidPool's descriptor;
 *   - where roi_pool pools nothing (the RoI lies wholly past the map: a box within the last half
 *     cell of the right or bottom edge, or wholly outside) and returns zeros, we keep the nearest
 *     cell; a box within one half cell (b = a) is one cell at a, as roi_pool's "malformed RoI" rule;
 *   - float64 instead of float32, which can only differ where box·f·s lies within float32 rounding
 *     (~1e-7 relative) of a .5 tie.
 * Because rounding is monotone, clipping the box to the image first (clipBox) gives the same window.
 * Example: the left half of a 224-px input on a 7-cell map, x ∈ [0, 112], is a = 0, b = round(3.5)
 * = 4 → cells [0, 4); the right half, x ∈ [112, 224], is [4, 7): no cell shared.
 */
export function mapBoxToCells(box: Box, image: Size, input: Size, map: Size): CellWindow {
  checkSize('image', image);
  checkSize('input', input);
  checkSize('map', map);
  if (box.length !== 4 || !box.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new Error(`box ${show(box)} must be 4 finite numbers [x0, y0, x1, y1]`);
  }
  const fx = input.width / image.width;
  const fy = input.height / image.height;
  const sx = map.width / input.width;
  const sy = map.height / input.height;
  const [x0, x1] = axis(box[0] * fx * sx, box[2] * fx * sx, map.width);
  const [y0, y1] = axis(box[1] * fy * sy, box[3] * fy * sy, map.height);
  return { x0, y0, x1, y1 };
}

/**
 * roi_pool rounds with C's round (halves away from zero); Math.round rounds halves up. They agree
 * on values ≥ 0, and a negative value ends up clamped the same either way (start → 0; end ≤ 0
 * → lo + 1), so the window is the same.
 */
function axis(start: number, end: number, cells: number): [number, number] {
  const lo = Math.min(Math.max(Math.round(start), 0), cells - 1);
  const hi = Math.min(Math.max(Math.round(end), lo + 1), cells);
  return [lo, hi];
}

function checkWindow(map: FeatureMap, w: CellWindow): void {
  const { height: H, width: W, channels: C, data } = map;
  for (const [k, v] of [['height', H], ['width', W], ['channels', C]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`feature map ${k} must be a positive integer, got ${String(v)}`);
  }
  if (!(data instanceof Float32Array) || data.length !== H * W * C) {
    throw new Error(`feature map data must be a Float32Array of ${H}x${W}x${C} = ${H * W * C} values`);
  }
  const ok = [w.x0, w.y0, w.x1, w.y1].every(Number.isInteger) && w.x0 >= 0 && w.y0 >= 0 && w.x1 > w.x0 && w.y1 > w.y0 && w.x1 <= W && w.y1 <= H;
  if (!ok) throw new Error(`window x [${w.x0}, ${w.x1}) y [${w.y0}, ${w.y1}) must be ≥ 1 cell within the ${H}×${W} map`);
}

/**
 * Pools a window of `map` into a descriptor laid out exactly as spatialPyramidPool's (levels in
 * order; bins row-major; channels innermost; length C · Σ n²).
 *
 * Bins are RoIPool's: over a window of length L starting at cell s, bin i of n spans
 * [s + floor(i·L/n), s + ceil((i+1)·L/n)) — roi_pool's hstart = floor(ph · L/n),
 * hend = ceil((ph+1) · L/n), plus roi_start, and within the map since the window is. Computed in
 * integers (binRange), so a window equal to the whole map has spatialPyramidPool's bins and, with
 * the same summation order, gives its descriptor bit for bit. roi_pool computes L/n in float32:
 * for n ∈ {1…6, 8, 9, 10, 12, 16} that gives the same edges for every L ≤ 4096; for n = 7, 11, 13,
 * 14, 15 (from L = 57, 29, 7, 57, 241) float32 rounding can push an edge one cell out (L = 57,
 * n = 7: last bin [48, 58)), and we keep the exact edges.
 *
 * pool:
 *   'max' — as spatialPyramidPool (NaN propagates; roi_pool starts from −FLT_MAX and skips NaN);
 *   'avg' — float64 sum / cell count (torchvision has no average RoI pooling);
 *   'gem' — generalized mean (Radenović et al. 2018): (mean over the bin of max(x, 1e-6)^p)^(1/p),
 *           in float64, stored as float32. p = 1 is the average (of values ≥ 1e-6), p → ∞ the max;
 *           negative values count as 1e-6, so it suits non-negative (post-ReLU) maps. Computed as
 *           m · (mean (x'/m)^p)^(1/p) with m the bin's largest x' = max(x, 1e-6), which is the
 *           same number without overflow for large p.
 */
export function poolWindow(
  map: FeatureMap,
  window: CellWindow,
  levels: readonly number[],
  pool: PoolMode,
  gemP: number = DEFAULT_GEM_P,
): Float32Array {
  validateLevels(levels);
  checkOption(findOption('pool'), pool, 'library');
  if (pool === 'gem') checkOption(findOption('gemP'), gemP, 'library');
  checkWindow(map, window);
  return pyramidPoolWindow(map, window, levels, pool, gemP);
}

/** Integer floor(j·L/k), exact for any sizes a JS number holds as an integer. */
function split(j: number, k: number, L: number): number {
  const p = j * L;
  return (p - (p % k)) / k;
}

/**
 * --grid RxC: `rows` × `cols` boxes tiling a width × height image (as displayed), row-major (row,
 * then column — the order of their descriptors). Edge j of k over a side of L pixels is at
 * floor(j·L/k): whole pixels, the first at 0 and the last at L, so tiles share edges with no gap
 * or overlap and their sizes differ by at most one pixel (10 px in 3 → 3, 3, 4).
 * With more rows than the image has pixels (or columns), some tiles are empty: clipBox reports them.
 * (Their windows on the map snap to cell boundaries and do not overlap: see mapBoxToCells.)
 */
export function gridBoxes(width: number, height: number, rows: number, cols: number): Box[] {
  checkSize('image', { width, height });
  for (const [k, v] of [['rows', rows], ['cols', cols]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`grid ${k} must be a positive integer, got ${String(v)}`);
  }
  const boxes: Box[] = [];
  for (let r = 0; r < rows; r++) {
    const y0 = split(r, rows, height), y1 = split(r + 1, rows, height);
    for (let c = 0; c < cols; c++) boxes.push([split(c, cols, width), y0, split(c + 1, cols, width), y1]);
  }
  return boxes;
}

/** One box's outcome: its descriptor and window, or why it has none (its failure record's reason; 'non-finite': pipeline/finite.ts). */
export type RegionResult =
  | { ok: true; descriptor: Float32Array; window: CellWindow }
  | { ok: false; reason: ClipFailure | 'non-finite'; message: string };

export interface RegionSpp {
  levels: readonly number[];
  pool: PoolMode;
  gemP: number;
  normalize: NormalizeMode;
}

/**
 * Descriptors of `boxes` ([x0, y0, x1, y1] in pixels of the image as displayed, `image` its size)
 * from the one feature map of that image fed at `input`'s size: clip, map to cells, pool, normalise.
 * Options already checked. A box covering the whole image gives the image's own descriptor.
 */
export function regionDescriptors(map: FeatureMap, boxes: readonly Box[], image: Size, input: Size, spp: RegionSpp): RegionResult[] {
  const describe = regionDescriber(map, image, input, spp);
  return boxes.map(describe);
}

/** regionDescriptors one box at a time (a run with many boxes holds one descriptor, not all of them). */
export function regionDescriber(map: FeatureMap, image: Size, input: Size, spp: RegionSpp): (box: Box) => RegionResult {
  return (box) => {
    const clipped = clipBox(box, image);
    if (!clipped.ok) return clipped;
    const window = mapBoxToCells(clipped.box, image, input, map);
    const descriptor = normalizeDescriptor(pyramidPoolWindow(map, window, spp.levels, spp.pool, spp.gemP), spp.normalize);
    return { ok: true, descriptor, window };
  };
}
