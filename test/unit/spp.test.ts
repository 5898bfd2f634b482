import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  binRange, descriptorLength, normalizeDescriptor, spatialPyramidPool, validateLevels,
  type FeatureMap, type NormalizeMode, type PoolMode,
} from '../../src/spp/spp.js';
import { fixture } from '../helpers/shared.js';

interface GoldenResult { levels: number[]; pool: PoolMode; expected: number[] }
interface GoldenCase { height: number; width: number; channels: number; data: number[]; results: GoldenResult[] }
interface GoldenNormalize { mode: NormalizeMode; input: number[]; expected: number[] }
interface Golden { cases: GoldenCase[]; normalize: GoldenNormalize[] }

/** fixtures/spp-golden.json: numpy's answers (scripts/spp_golden.py), computed outside this code. */
function goldenPath(): string {
  const found = fixture('spp-golden.json');
  if (!existsSync(found)) throw new Error(`spp-golden.json not found at ${found}; run npm run golden`);
  return found;
}

const golden = JSON.parse(readFileSync(goldenPath(), 'utf8')) as Golden;

const TOL = 1e-6;

/** Names the descriptor position of a flat index, for readable failures. */
function where(i: number, levels: readonly number[], C: number): string {
  let off = 0;
  for (const n of levels) {
    const len = n * n * C;
    if (i < off + len) {
      const r = i - off;
      const bin = Math.floor(r / C);
      return `level ${n} bin (by=${Math.floor(bin / n)}, bx=${bin % n}) channel ${r % C}`;
    }
    off += len;
  }
  return `index ${i} past the end`;
}

function assertDescriptor(got: Float32Array, expected: number[], exact: boolean, label: string, levels: readonly number[], C: number): void {
  assert.equal(got.length, expected.length, `${label}: length`);
  for (let i = 0; i < got.length; i++) {
    const e = Math.fround(expected[i]);
    const ok = exact ? Object.is(got[i], e) || got[i] === e : Math.abs(got[i] - e) <= TOL * Math.max(1, Math.abs(e));
    if (!ok) assert.fail(`${label}: ${where(i, levels, C)}: got ${got[i]}, expected ${e}`);
  }
}

const mapOf = (c: GoldenCase): FeatureMap =>
  ({ data: Float32Array.from(c.data), height: c.height, width: c.width, channels: c.channels });

describe('spatialPyramidPool matches the numpy reference (fixtures/spp-golden.json)', () => {
  it('covers the intended sizes', () => {
    assert.ok(golden.cases.length >= 100);
    const sizes = new Set(golden.cases.map((c) => `${c.height}x${c.width}`));
    for (const s of ['1x1', '1x20', '20x1', '20x20', '7x3', '3x7', '20x7']) assert.ok(sizes.has(s), s);
  });

  for (const c of golden.cases) {
    it(`${c.height}x${c.width}x${c.channels}`, () => {
      const map = mapOf(c);
      for (const r of c.results) {
        const got = spatialPyramidPool(map, r.levels, r.pool);
        assertDescriptor(got, r.expected, r.pool === 'max', `${r.pool} [${r.levels}]`, r.levels, c.channels);
      }
    });
  }
});

describe('normalizeDescriptor matches the numpy reference', () => {
  for (const [k, c] of golden.normalize.entries()) {
    it(`${c.mode} #${k} (${c.input.length} values)`, () => {
      const vec = Float32Array.from(c.input);
      const out = normalizeDescriptor(vec, c.mode);
      assert.equal(out, vec, 'normalizes in place');
      assertDescriptor(out, c.expected, false, c.mode, [1], 1);
    });
  }

  it("'none' leaves the vector alone; l2 gives unit norm; all-zero stays zero", () => {
    const v = Float32Array.of(3, -4);
    assert.deepEqual([...normalizeDescriptor(v, 'none')], [3, -4]);
    assert.deepEqual([...normalizeDescriptor(v, 'l2')], [Math.fround(0.6), Math.fround(-0.8)]);
    for (const mode of ['l2', 'sqrt'] as const) {
      const z = normalizeDescriptor(new Float32Array(5), mode);
      assert.deepEqual([...z], [0, 0, 0, 0, 0]);
    }
    const s = normalizeDescriptor(Float32Array.of(-9, 16), 'sqrt'); // → (-3, 4) / 5
    assert.ok(Math.abs(s[0] + 0.6) < 1e-7 && Math.abs(s[1] - 0.8) < 1e-7, `${[...s]}`);
  });

  it('rejects an unknown mode', () => {
    assert.throws(() => normalizeDescriptor(new Float32Array(2), 'l1' as NormalizeMode), /'l1'/);
  });
});

describe('binRange', () => {
  it('agrees with floor(i*a/n), ceil((i+1)*a/n)', () => {
    for (let a = 1; a <= 64; a++) {
      for (let n = 1; n <= 16; n++) {
        for (let i = 0; i < n; i++) {
          assert.deepEqual(binRange(i, n, a), [Math.floor((i * a) / n), Math.ceil(((i + 1) * a) / n)], `i=${i} n=${n} a=${a}`);
        }
      }
    }
  });

  it('bins of every level are non-empty, in range, ordered and cover every row/column', () => {
    for (let a = 1; a <= 64; a++) {
      for (let n = 1; n <= 16; n++) {
        const covered = new Uint8Array(a);
        let prevStart = -1;
        let prevEnd = 0;
        for (let i = 0; i < n; i++) {
          const [s, e] = binRange(i, n, a);
          const msg = `bin ${i} of ${n} over ${a}: [${s}, ${e})`;
          assert.ok(s >= 0 && e <= a && e > s, msg);
          assert.ok(s >= prevStart && s <= prevEnd, `${msg} leaves a gap or goes back`);
          prevStart = s;
          prevEnd = e;
          covered.fill(1, s, e);
        }
        assert.equal(binRange(0, n, a)[0], 0);
        assert.equal(binRange(n - 1, n, a)[1], a);
        assert.ok(covered.every((x) => x === 1), `n=${n} a=${a}: uncovered cell`);
      }
    }
  });

  it('when a < n, bins repeat cells and each holds one or two cells', () => {
    for (let a = 1; a <= 6; a++) {
      for (let n = a + 1; n <= 12; n++) {
        for (let i = 0; i < n; i++) {
          const [s, e] = binRange(i, n, a);
          assert.ok(e - s === 1 || e - s === 2, `i=${i} n=${n} a=${a}: [${s}, ${e})`);
        }
      }
    }
    assert.deepEqual([0, 1, 2, 3].map((i) => binRange(i, 4, 1)), [[0, 1], [0, 1], [0, 1], [0, 1]]);
  });
});

describe('spatialPyramidPool properties', () => {
  // value = 100*y + 10*x + c makes each cell's position readable.
  function positional(h: number, w: number, c: number): FeatureMap {
    const data = new Float32Array(h * w * c);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) data[(y * w + x) * c + k] = 100 * y + 10 * x + k;
    return { data, height: h, width: w, channels: c };
  }

  it('uses the documented layout: level offset + (by*n + bx)*C + c', () => {
    const map = positional(4, 4, 2);
    const out = spatialPyramidPool(map, [1, 2], 'max');
    assert.equal(out.length, descriptorLength(2, [1, 2]));
    // level 1: global max per channel
    assert.deepEqual([...out.subarray(0, 2)], [330, 331]);
    // level 2: bins (0,0) (0,1) (1,0) (1,1), max at the bottom-right cell of each 2x2 block
    assert.deepEqual([...out.subarray(2)], [110, 111, 130, 131, 310, 311, 330, 331]);
    const avg = spatialPyramidPool(map, [2], 'avg');
    assert.deepEqual([...avg], [55, 56, 75, 76, 255, 256, 275, 276]);
  });

  it('a map smaller than the level repeats cells, every bin filled', () => {
    const one = { data: Float32Array.of(-2, 5), height: 1, width: 1, channels: 2 };
    for (const pool of ['max', 'avg'] as const) {
      const out = spatialPyramidPool(one, [3], pool);
      assert.deepEqual([...out], Array.from({ length: 9 }, () => [-2, 5]).flat());
    }
    const out = spatialPyramidPool(positional(1, 2, 1), [4], 'max');
    assert.deepEqual([...out], Array.from({ length: 4 }, () => [0, 0, 10, 10]).flat());
  });

  it('max of an all-negative bin is negative, not 0', () => {
    const map = { data: Float32Array.of(-3, -1, -2, -5), height: 2, width: 2, channels: 1 };
    assert.deepEqual([...spatialPyramidPool(map, [1], 'max')], [-1]);
  });

  it('max pooling propagates NaN like numpy', () => {
    const map = { data: Float32Array.of(1, NaN, 3, 2), height: 2, width: 2, channels: 1 };
    const out = spatialPyramidPool(map, [1, 2], 'max');
    assert.ok(Number.isNaN(out[0]), 'level 1 sees the NaN');
    assert.ok(Number.isNaN(out[2]), 'level 2 bin (0, 1) is the NaN cell');
    assert.deepEqual([out[1], out[3], out[4]], [1, 3, 2]);
  });

  it('descriptorLength is C * sum(n^2) and matches the output', () => {
    assert.equal(descriptorLength(1280, [1, 2, 4]), 1280 * 21);
    assert.equal(descriptorLength(256, [6, 3, 2, 1]), 256 * 50);
    assert.equal(descriptorLength(3, [1, 2, 3, 4, 6]), 3 * 66);
    const map = positional(5, 3, 3);
    for (const levels of [[1], [6, 3, 2, 1], [1, 2, 3, 4, 6], [7, 7]]) {
      assert.equal(spatialPyramidPool(map, levels, 'avg').length, descriptorLength(3, levels));
    }
  });

  it('handles a large map (30x40x1024, levels 1,2,3,4,6)', () => {
    const h = 30, w = 40, c = 1024;
    const data = new Float32Array(h * w * c);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) % 1000 / 1000;
    const map = { data, height: h, width: w, channels: c };
    const mx = spatialPyramidPool(map, [1, 2, 3, 4, 6], 'max');
    const av = spatialPyramidPool(map, [1, 2, 3, 4, 6], 'avg');
    assert.equal(mx.length, 66 * c);
    // Level 1 is the global max / mean of each channel.
    for (const k of [0, 1, 511, 1023]) {
      let m = -Infinity, s = 0;
      for (let p = 0; p < h * w; p++) { m = Math.max(m, data[p * c + k]); s += data[p * c + k]; }
      assert.equal(mx[k], m);
      assert.ok(Math.abs(av[k] - s / (h * w)) < 1e-6);
    }
  });

  it('rejects a map whose data does not match its shape', () => {
    const bad: [FeatureMap, RegExp][] = [
      [{ data: new Float32Array(11), height: 2, width: 2, channels: 3 }, /11 values, expected 2x2x3 = 12/],
      [{ data: new Float32Array(0), height: 0, width: 2, channels: 3 }, /height/],
      [{ data: new Float32Array(0), height: 2, width: 2, channels: 0 }, /channels/],
      [{ data: new Float32Array(6), height: 1.5, width: 2, channels: 2 }, /height/],
      [{ data: new Float32Array(4), height: 2, width: -2, channels: 1 }, /width/],
      [{ data: [1, 2] as unknown as Float32Array, height: 1, width: 1, channels: 2 }, /Float32Array/],
    ];
    for (const [map, re] of bad) assert.throws(() => spatialPyramidPool(map, [1], 'max'), re);
  });

  it('rejects bad levels and pool modes', () => {
    const map = positional(2, 2, 1);
    assert.throws(() => spatialPyramidPool(map, [1, 0], 'max'), /Error: levels must be .*got '1,0'/);
    assert.throws(() => spatialPyramidPool(map, [1], 'sum' as PoolMode), /'sum'/);
  });
});

describe('validateLevels', () => {
  it('accepts positive integers', () => {
    for (const levels of [[1], [1, 2, 4], [6, 3, 2, 1], [13]]) validateLevels(levels);
  });

  it('rejects 0, -1, 1.5, NaN, Infinity, non-numbers and [] naming the option and the value', () => {
    for (const [bad, shown] of [[0, "'1,0'"], [-1, "'1,-1'"], [1.5, "'1,1.5'"], [NaN, "'1,NaN'"], [Infinity, "'1,Infinity'"], ['2', `'[1,"2"]'`]] as const) {
      assert.throws(() => validateLevels([1, bad as number]), (e: Error) => e.message.startsWith('levels must be') && e.message.includes(`got ${shown}`), `level ${shown}`);
    }
    assert.throws(() => validateLevels([]), /empty/);
  });
});

it('levels in any order, repeated, derived from finer levels: equal each level pooled on its own', () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (const [h, w] of [[7, 10], [3, 2], [13, 1], [20, 17]]) {
    const C = 5;
    const map = { data: Float32Array.from({ length: h * w * C }, rand), height: h, width: w, channels: C };
    for (const pool of ['max', 'avg'] as const) {
      for (const levels of [[2, 4, 1, 4], [6, 3, 2, 1], [1, 3, 9], [8, 4, 2, 1], [5, 10, 2]]) {
        const together = spatialPyramidPool(map, levels, pool);
        const alone = levels.flatMap((n) => Array.from(spatialPyramidPool(map, [n], pool)));
        assert.deepEqual(Array.from(together), alone, `${h}x${w} ${pool} [${levels}]`);
      }
    }
  }
});
