import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  clipBox, gridBoxes, mapBoxToCells, poolWindow, regionDescriptors, type Box, type CellWindow,
} from '../../src/spp/regions.js';
import { descriptorLength, normalizeDescriptor, spatialPyramidPool, type FeatureMap, type PoolMode } from '../../src/spp/spp.js';
import { fixture } from '../helpers/shared.js';

interface GoldenBox {
  kind: string;
  box: [number, number, number, number];
  window: CellWindow;
  torchvisionEmpty: boolean;
  sameAsRawRoiPool: boolean | null;
  max: number[];
  avg: number[];
  gem: number[];
}
interface GoldenCase {
  height: number; width: number; channels: number;
  input: { width: number; height: number };
  levels: number[]; gemP: number; data: number[]; boxes: GoldenBox[];
}
interface Golden { gemEps: number; cases: GoldenCase[] }

/** fixtures/roi-golden.json: torchvision roi_pool's windows and max pooling, numpy's avg and GeM (scripts/roi_golden.py). */
function goldenPath(): string {
  const found = fixture('roi-golden.json');
  if (!existsSync(found)) throw new Error(`roi-golden.json not found at ${found}; run /usr/bin/python3 scripts/roi_golden.py > fixtures/roi-golden.json`);
  return found;
}

const golden = JSON.parse(readFileSync(goldenPath(), 'utf8')) as Golden;

const REL = 1e-6;

function assertClose(got: Float32Array, expected: number[], exact: boolean, label: string, C: number): void {
  assert.equal(got.length, expected.length, `${label}: length`);
  for (let i = 0; i < got.length; i++) {
    const e = Math.fround(expected[i]);
    const ok = exact ? Object.is(got[i], e) || got[i] === e : Math.abs(got[i] - e) <= REL * Math.max(Math.abs(e), 1e-30);
    if (!ok) assert.fail(`${label}: value ${i} (bin ${Math.floor(i / C)}, channel ${i % C}): got ${got[i]}, expected ${e}`);
  }
}

const mapOf = (c: GoldenCase): FeatureMap =>
  ({ data: Float32Array.from(c.data), height: c.height, width: c.width, channels: c.channels });

/** Deterministic pseudo-random floats in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
}

function randomMap(h: number, w: number, c: number, seed: number, nonNegative = false): FeatureMap {
  const r = rng(seed);
  const data = Float32Array.from({ length: h * w * c }, () => (nonNegative ? Math.abs(r()) + 0.01 : r()));
  return { data, height: h, width: w, channels: c };
}

describe('regions match torchvision roi_pool and numpy (fixtures/roi-golden.json)', () => {
  it('covers the intended cases', () => {
    assert.ok(golden.cases.length >= 40);
    const shapes = new Set(golden.cases.map((c) => `${c.height}x${c.width}`));
    for (const s of ['3x5', '5x3', '7x10', '10x7', '1x1']) assert.ok(shapes.has(s), s);
    const kinds = new Set(golden.cases.flatMap((c) => c.boxes.map((b) => b.kind)));
    for (const k of ['whole', 'sub-cell', 'border', 'outside', 'tie', 'last-half-cell']) assert.ok(kinds.has(k), k);
    const boxes = golden.cases.flatMap((c) => c.boxes);
    assert.ok(boxes.some((b) => b.torchvisionEmpty), 'a box where roi_pool pools nothing');
    assert.ok(boxes.some((b) => b.sameAsRawRoiPool === false), 'a box whose raw RoI overruns the map');
    assert.ok(golden.cases.some((c) => c.width / c.input.width !== c.height / c.input.height), 'axes scaled differently');
  });

  for (const [k, c] of golden.cases.entries()) {
    it(`#${k} ${c.height}x${c.width}x${c.channels} from ${c.input.width}x${c.input.height}, levels [${c.levels}], GeM p=${c.gemP}`, () => {
      const map = mapOf(c);
      const size = { width: c.width, height: c.height };
      for (const b of c.boxes) {
        const label = `${b.kind} [${b.box}]`;
        const win = mapBoxToCells(b.box, c.input, c.input, size);
        assert.deepEqual(win, b.window, `${label}: window`);
        const clipped = clipBox(b.box, c.input);
        if (clipped.ok) assert.deepEqual(mapBoxToCells(clipped.box, c.input, c.input, size), win, `${label}: clipped first, same window`);
        assertClose(poolWindow(map, win, c.levels, 'max'), b.max, true, `${label} max`, c.channels);
        assertClose(poolWindow(map, win, c.levels, 'avg'), b.avg, false, `${label} avg`, c.channels);
        assertClose(poolWindow(map, win, c.levels, 'gem', c.gemP), b.gem, false, `${label} gem p=${c.gemP}`, c.channels);
      }
    });
  }
});

describe('mapBoxToCells', () => {
  const image = { width: 640, height: 480 };
  const input = { width: 299, height: 224 }; // --size 224
  const map = { width: 10, height: 7 };

  it('maps the worked example of the docs (640×480 photo → 299×224 input → 10×7 map)', () => {
    // x: 100·299/640 = 46.72 px → ·10/299 = 1.5625 → 2;  400 → 186.875 px → 6.25 → 6 (end, exclusive)
    // y:  50·224/480 = 23.33 px → · 7/224 = 0.729  → 1;  300 → 140 px     → 4.375 → 4
    assert.deepEqual(mapBoxToCells([100, 50, 400, 300], image, input, map), { x0: 2, y0: 1, x1: 6, y1: 4 });
  });

  it('the whole image is the whole map; the box is scaled by input/image per axis', () => {
    assert.deepEqual(mapBoxToCells([0, 0, 640, 480], image, input, map), { x0: 0, y0: 0, x1: 10, y1: 7 });
    for (const [w, h] of [[1, 1], [3, 5], [4000, 3000], [297, 1001]]) {
      assert.deepEqual(mapBoxToCells([0, 0, w, h], { width: w, height: h }, input, map), { x0: 0, y0: 0, x1: 10, y1: 7 }, `${w}x${h}`);
    }
    // Doubling the image and the box (exact in binary) changes nothing.
    const inp = { width: 224, height: 320 };
    const m = { width: 7, height: 10 };
    for (const box of [[16, 16, 48, 80], [3.25, 100.5, 50, 200], [200, 300, 224, 320]] as Box[]) {
      assert.deepEqual(mapBoxToCells(box.map((v) => 2 * v) as unknown as Box, { width: 448, height: 640 }, inp, m), mapBoxToCells(box, inp, inp, m), `[${box}]`);
    }
  });

  it('rounds halfway away from zero, the end exclusive: edges snap to the nearest cell boundary', () => {
    const sq = { width: 224, height: 224 };
    const m7 = { width: 7, height: 7 };
    // 16 px = 0.5 cell → 1; the left half [0, 112] → end round(3.5) = 4 → [0, 4)
    assert.deepEqual(mapBoxToCells([16, 0, 112, 16], sq, sq, m7), { x0: 1, y0: 0, x1: 4, y1: 1 });
    assert.deepEqual(mapBoxToCells([15.99, 0, 111.99, 15.99], sq, sq, m7), { x0: 0, y0: 0, x1: 3, y1: 1 });
  });

  it('the tiles of a grid get windows that share no cell and cover the map (cells ≥ tiles)', () => {
    for (const [W, H, R, C, input, map] of [[640, 480, 2, 2, [299, 224], [10, 7]], [224, 224, 3, 3, [224, 224], [7, 7]], [1000, 333, 2, 4, [673, 224], [21, 7]]] as const) {
      const seen = new Uint8Array(map[0] * map[1]);
      for (const b of gridBoxes(W, H, R, C)) {
        const w = mapBoxToCells(b, { width: W, height: H }, { width: input[0], height: input[1] }, { width: map[0], height: map[1] });
        for (let y = w.y0; y < w.y1; y++) for (let x = w.x0; x < w.x1; x++) seen[y * map[0] + x]++;
      }
      assert.ok(seen.every((v) => v === 1), `${W}x${H} ${R}x${C}: every cell in exactly one window`);
    }
  });

  it('a box smaller than a cell covers exactly one cell, wherever it is', () => {
    const sq = { width: 224, height: 224 };
    const m7 = { width: 7, height: 7 };
    for (let x = 0; x < 224; x += 3.5) {
      for (const w of [0.25, 1, 7, 15.5]) {
        const win = mapBoxToCells([x, x, Math.min(x + w, 224), Math.min(x + w, 224)], sq, sq, m7);
        assert.ok(win.x1 - win.x0 >= 1 && win.x1 - win.x0 <= 2, `x=${x} w=${w}: ${JSON.stringify(win)}`);
        // Fewer than half a cell wide: never straddles a rounding point, so one cell.
        if (w < 16 && Math.floor((x + 16) / 32) === Math.floor((Math.min(x + w, 224) + 16) / 32)) {
          assert.equal(win.x1 - win.x0, 1, `x=${x} w=${w}`);
          assert.equal(win.y1 - win.y0, 1, `x=${x} w=${w}`);
        }
      }
    }
    // In the last half cell of the edge roi_pool pools nothing; we keep the last cell.
    assert.deepEqual(mapBoxToCells([220, 220, 224, 224], sq, sq, m7), { x0: 6, y0: 6, x1: 7, y1: 7 });
    // Wholly outside and inverted boxes still give one cell (clipBox rejects them first).
    assert.deepEqual(mapBoxToCells([-100, -100, -50, -50], sq, sq, m7), { x0: 0, y0: 0, x1: 1, y1: 1 });
    assert.deepEqual(mapBoxToCells([100, 100, 40, 40], sq, sq, m7), { x0: 3, y0: 3, x1: 4, y1: 4 });
  });

  it('rejects non-finite boxes and bad sizes', () => {
    assert.throws(() => mapBoxToCells([0, NaN, 1, 1], image, input, map), /finite/);
    assert.throws(() => mapBoxToCells([0, 0, 1, 1], image, input, { width: 0, height: 7 }), /map width/);
    assert.throws(() => mapBoxToCells([0, 0, 1, 1], { width: 640, height: 1.5 }, input, map), /image height/);
  });
});

describe('poolWindow', () => {
  it('the whole map gives spatialPyramidPool bit for bit (max and avg)', () => {
    for (const [h, w, c] of [[7, 7, 3], [7, 10, 4], [10, 7, 2], [1, 1, 5], [3, 5, 1], [13, 2, 3], [20, 17, 2]]) {
      const map = randomMap(h, w, c, h * 100 + w);
      const whole = { x0: 0, y0: 0, x1: w, y1: h };
      for (const pool of ['max', 'avg'] as const) {
        for (const levels of [[1, 2, 4], [6, 3, 2, 1], [1, 2, 3, 4, 6], [7], [5, 10]]) {
          const got = poolWindow(map, whole, levels, pool);
          const spp = spatialPyramidPool(map, levels, pool);
          assert.ok(got.every((v, i) => Object.is(v, spp[i])), `${h}x${w}x${c} ${pool} [${levels}]`);
        }
      }
      // Through the box mapping too: the whole image of any size.
      const win = mapBoxToCells([0, 0, 640, 480], { width: 640, height: 480 }, { width: 299, height: 224 }, { width: w, height: h });
      assert.deepEqual(win, whole);
    }
  });

  it('uses RoIPool bins inside the window: [s + floor(i·L/n), s + ceil((i+1)·L/n))', () => {
    // value = 100·y + 10·x: a bin's max is its bottom-right cell
    const h = 6, w = 8;
    const data = new Float32Array(h * w);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = 100 * y + 10 * x;
    const map = { data, height: h, width: w, channels: 1 };
    // window x [2, 7) (L = 5), y [1, 4) (L = 3), n = 2: x bins [2, 5) [4, 7); y bins [1, 3) [2, 4)
    assert.deepEqual([...poolWindow(map, { x0: 2, y0: 1, x1: 7, y1: 4 }, [2], 'max')], [240, 260, 340, 360]);
    // the min corner shows the bin starts, through avg of a 1-cell level-3 bin: x [2,4) [3,6) [5,7)
    const avg = poolWindow(map, { x0: 2, y0: 1, x1: 3, y1: 2 }, [1, 3], 'avg');
    assert.deepEqual([...avg], Array(10).fill(120));
    assert.equal(poolWindow(map, { x0: 2, y0: 1, x1: 7, y1: 4 }, [1, 2, 3], 'gem').length, descriptorLength(1, [1, 2, 3]));
  });

  it('GeM with p = 1 is the average (values ≥ 1e-6); with large p it approaches the max', () => {
    for (const [h, w, c] of [[7, 7, 4], [3, 5, 2], [10, 7, 3]]) {
      const map = randomMap(h, w, c, 7 * h + w, true);
      const levels = [1, 2, 3];
      for (const win of [{ x0: 0, y0: 0, x1: w, y1: h }, { x0: 1, y0: 1, x1: w - 1, y1: h - 1 }, { x0: 2, y0: 2, x1: 3, y1: 3 }]) {
        const avg = poolWindow(map, win, levels, 'avg');
        const g1 = poolWindow(map, win, levels, 'gem', 1);
        for (let i = 0; i < avg.length; i++) {
          assert.ok(Math.abs(g1[i] - avg[i]) <= 2 ** -23 * Math.abs(avg[i]), `p=1 value ${i}: ${g1[i]} vs ${avg[i]}`);
        }
        const mx = poolWindow(map, win, levels, 'max');
        const g50 = poolWindow(map, win, levels, 'gem', 50);
        const g1000 = poolWindow(map, win, levels, 'gem', 1000);
        const g3 = poolWindow(map, win, levels, 'gem');
        for (let i = 0; i < mx.length; i++) {
          // (1/k)^(1/p)·max ≤ GeM ≤ max for a bin of k cells; k ≤ 70 here
          assert.ok(g50[i] <= mx[i] * (1 + 1e-7) && g50[i] >= mx[i] * 70 ** (-1 / 50) * (1 - 1e-7), `p=50 value ${i}`);
          assert.ok(Math.abs(g1000[i] - mx[i]) <= 0.005 * mx[i], `p=1000 value ${i}: ${g1000[i]} vs ${mx[i]}`);
          assert.ok(g3[i] >= avg[i] * (1 - 1e-7) && g3[i] <= g50[i] * (1 + 1e-7), `avg ≤ GeM(3) ≤ GeM(50), value ${i}`);
        }
      }
    }
  });

  it('GeM does not overflow for large values and p; counts negatives as 1e-6', () => {
    const map = { data: Float32Array.of(1e30, 3e30, -5, 0), height: 2, width: 2, channels: 1 };
    const g = poolWindow(map, { x0: 0, y0: 0, x1: 2, y1: 2 }, [1, 2], 'gem', 100);
    assert.ok(Number.isFinite(g[0]) && g[0] <= 3e30 && g[0] > 2.9e30, `${g[0]}`);
    assert.deepEqual([...g.subarray(1)], [1e30, 3e30, 1e-6, 1e-6].map(Math.fround));
  });

  it('rejects bad windows, pools and p', () => {
    const map = randomMap(3, 4, 2, 1);
    const ok = { x0: 0, y0: 0, x1: 4, y1: 3 };
    for (const bad of [{ x0: 0, y0: 0, x1: 5, y1: 3 }, { x0: 2, y0: 0, x1: 2, y1: 3 }, { x0: -1, y0: 0, x1: 2, y1: 3 }, { x0: 0.5, y0: 0, x1: 2, y1: 3 }]) {
      assert.throws(() => poolWindow(map, bad, [1], 'max'), /window/, JSON.stringify(bad));
    }
    assert.throws(() => poolWindow(map, ok, [1], 'sum' as PoolMode), /'sum'/);
    assert.throws(() => poolWindow(map, ok, [0], 'max'), /levels/);
    for (const p of [0, -1, NaN, Infinity]) assert.throws(() => poolWindow(map, ok, [1], 'gem', p), /gemP/, `p=${p}`);
    assert.throws(() => poolWindow({ ...map, data: new Float32Array(5) }, ok, [1], 'max'), /Float32Array of 3x4x2/);
  });
});

describe('gridBoxes', () => {
  it('tiles the image row-major without gaps or overlaps, sizes within one pixel', () => {
    for (const [W, H] of [[640, 480], [10, 10], [7, 3], [1, 1], [1001, 17]]) {
      for (const [R, C] of [[1, 1], [2, 2], [3, 3], [1, 4], [3, 1], [2, 7]]) {
        if (R > H || C > W) continue;
        const boxes = gridBoxes(W, H, R, C);
        assert.equal(boxes.length, R * C);
        const cover = new Uint8Array(W * H);
        const widths = new Set<number>();
        const heights = new Set<number>();
        boxes.forEach(([x0, y0, x1, y1], k) => {
          assert.ok([x0, y0, x1, y1].every(Number.isInteger) && x1 > x0 && y1 > y0, `${W}x${H} ${R}x${C} #${k}`);
          if (k % C > 0) assert.equal(x0, boxes[k - 1][2], 'shares the left neighbour’s edge');
          if (k >= C) assert.equal(y0, boxes[k - C][3], 'shares the upper neighbour’s edge');
          widths.add(x1 - x0);
          heights.add(y1 - y0);
          for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) cover[y * W + x]++;
        });
        assert.ok(cover.every((v) => v === 1), `${W}x${H} ${R}x${C}: every pixel in exactly one tile`);
        assert.ok(Math.max(...widths) - Math.min(...widths) <= 1 && Math.max(...heights) - Math.min(...heights) <= 1);
        for (const b of boxes) assert.ok(clipBox(b, { width: W, height: H }).ok);
      }
    }
    assert.deepEqual(gridBoxes(10, 4, 2, 3), [[0, 0, 3, 2], [3, 0, 6, 2], [6, 0, 10, 2], [0, 2, 3, 4], [3, 2, 6, 4], [6, 2, 10, 4]]);
  });

  it('gives empty tiles (failures of those boxes) when there are more tiles than pixels; rejects non-integers', () => {
    const boxes = gridBoxes(3, 10, 1, 4);
    assert.deepEqual(boxes, [[0, 0, 0, 10], [0, 0, 1, 10], [1, 0, 2, 10], [2, 0, 3, 10]]);
    assert.deepEqual(boxes.map((b) => clipBox(b, { width: 3, height: 10 }).ok), [false, true, true, true]);
    assert.throws(() => gridBoxes(10, 10, 0, 1), /rows must be a positive integer/);
    assert.throws(() => gridBoxes(10, 10, 1.5, 1), /rows/);
  });
});

describe('clipBox', () => {
  const image = { width: 100, height: 50 };
  it('keeps a box inside, clips one partly outside', () => {
    assert.deepEqual(clipBox([10, 5, 20, 30], image), { ok: true, box: [10, 5, 20, 30], clipped: false });
    assert.deepEqual(clipBox([-10, -5, 120, 60], image), { ok: true, box: [0, 0, 100, 50], clipped: true });
    assert.deepEqual(clipBox([0, 0, 100, 50], image), { ok: true, box: [0, 0, 100, 50], clipped: false });
  });
  it('reports empty, inverted, outside and non-finite boxes', () => {
    const reason = (b: Box) => { const r = clipBox(b, image); return r.ok ? 'ok' : r.reason; };
    assert.equal(reason([10, 10, 10, 20]), 'empty');
    assert.equal(reason([10, 10, 20, 10]), 'empty');
    assert.equal(reason([20, 10, 10, 20]), 'inverted');
    assert.equal(reason([10, 20, 20, 10]), 'inverted');
    assert.equal(reason([100, 0, 120, 10]), 'outside'); // touches the right edge only
    assert.equal(reason([-30, -30, -1, 10]), 'outside');
    assert.equal(reason([0, 60, 10, 70]), 'outside');
    assert.equal(reason([0, NaN, 10, 10]), 'not-finite');
    assert.equal(reason([0, 0, Infinity, 10]), 'not-finite');
    assert.equal(reason([0, 0, 10] as unknown as Box), 'not-finite');
    const r = clipBox([20, 10, 10, 20], image);
    assert.ok(!r.ok && /\[20, 10, 10, 20\] is inverted/.test(r.message));
  });
});

describe('whole-map pooling and regionDescriptors', () => {
  it('spatialPyramidPool gem equals poolWindow over the whole map, bit for bit', () => {
    for (const [h, w, c] of [[7, 7, 4], [3, 5, 2], [10, 7, 3]]) {
      const map = randomMap(h, w, c, 31 * h + w, true);
      for (const p of [1, 3, 7.5]) {
        const whole = poolWindow(map, { x0: 0, y0: 0, x1: w, y1: h }, [1, 2, 4], 'gem', p);
        assert.deepEqual(spatialPyramidPool(map, [1, 2, 4], 'gem', p), whole, `${h}x${w} p=${p}`);
      }
    }
  });

  it('a box covering the image gives the image descriptor (normalised too); bad boxes are failures with their reason', () => {
    const map = randomMap(7, 10, 5, 3, false);
    const image = { width: 640, height: 480 };
    const input = { width: 299, height: 224 };
    for (const pool of ['max', 'avg', 'gem'] as const) {
      for (const normalize of ['none', 'l2', 'sqrt'] as const) {
        const spp = { levels: [1, 2, 4], pool, gemP: 3, normalize };
        const [whole, bigger, empty, inverted, outside, nan] = regionDescriptors(
          map, [[0, 0, 640, 480], [-50, -50, 900, 900], [5, 5, 5, 9], [9, 9, 5, 5], [700, 0, 800, 10], [NaN, 0, 1, 1]], image, input, spp,
        );
        const expected = normalizeDescriptor(spatialPyramidPool(map, spp.levels, pool, 3), normalize);
        assert.ok(whole.ok && bigger.ok);
        assert.deepEqual(whole.descriptor, expected, `${pool}/${normalize}`);
        assert.deepEqual(bigger.descriptor, expected, 'clipped to the image');
        assert.deepEqual([empty, inverted, outside, nan].map((r) => (r.ok ? 'ok' : r.reason)), ['empty', 'inverted', 'outside', 'not-finite']);
      }
    }
  });

  it('the README\'s worked example: 640×480 → 299×224 → 10×7 cells; box [100, 50, 400, 300] → x [2, 6), y [1, 4)', () => {
    assert.deepEqual(mapBoxToCells([100, 50, 400, 300], { width: 640, height: 480 }, { width: 299, height: 224 }, { width: 10, height: 7 }), { x0: 2, y0: 1, x1: 6, y1: 4 });
  });
});
