import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openFitKernel, openProjectKernel, type ProjectKernel } from '../../src/pca/kernel.js';
import { gaussian } from '../../src/pca/linalg.js';

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/**
 * |got − want| ≤ rel · scale, where scale is Σ|terms| of the product (float64): the bound a float32
 * sum of those terms obeys (a few ulps of the terms' magnitude per term), without blowing up for
 * entries that cancel to ~0.
 */
function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>, rel: number, label: string) {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    assert.ok(err <= rel * scale[i], `${label}[${i}]: ${got[i]} vs ${want[i]} (|Δ| ${err.toExponential(2)}, scale ${scale[i]})`);
  }
}

describe('openProjectKernel: a row\'s bits do not depend on its batch', () => {
  const d = 2000;
  const k = 32;
  const n = 64;
  const g = gaussian(2024);
  const mean = Float32Array.from({ length: d }, () => 0.1 * g());
  // Unit-ish rows like real components, and rows of data with an offset.
  const components = Float32Array.from({ length: k * d }, () => g() / Math.sqrt(d));
  const x = Float32Array.from({ length: n * d }, () => 0.5 + g());
  let kernel: ProjectKernel;
  let alone: Float32Array[];
  before(async () => {
    kernel = await openProjectKernel(mean, components, k, d, 1);
    alone = [];
    for (let r = 0; r < n; r++) alone.push(Float32Array.from(await kernel.project(x.slice(r * d, (r + 1) * d), 1)));
  });
  after(() => kernel.dispose());

  it('a row alone matches a float64 reference of (x − mean)·Wᵀ within float32 rounding', () => {
    for (let r = 0; r < n; r++) {
      const want = new Float64Array(k);
      const scale = new Float64Array(k);
      for (let j = 0; j < k; j++) {
        for (let i = 0; i < d; i++) {
          // The graph's Sub is float32: centre in float32 as it does, then multiply in float64.
          const term = components[j * d + i] * Math.fround(x[r * d + i] - mean[i]);
          want[j] += term;
          scale[j] += Math.abs(term);
        }
      }
      // 1e-4 of Σ|terms|: float32 accumulation over 2000 terms errs ≲ √2000·6e-8 ≈ 3e-6 typically.
      assertClose(alone[r], want, scale, 1e-4, `row ${r}`);
    }
  });

  for (const batch of [2, 3, 31, 64]) {
    it(`batches of ${batch}: every row bit-identical to the row projected alone`, async () => {
      for (let start = 0; start < n; start += batch) {
        const rows = Math.min(batch, n - start);
        const out = await kernel.project(x.subarray(start * d, (start + rows) * d), rows);
        assert.equal(out.length, rows * k);
        for (let r = 0; r < rows; r++) {
          assert.deepEqual(bits(out.subarray(r * k, (r + 1) * k)), bits(alone[start + r]), `batch ${batch}: row ${start + r} at position ${r}`);
        }
      }
    });
  }

  it('any position in a batch: the same row at each of the 31 places of a batch of 31 rotated', async () => {
    const rows = 31;
    for (let shift = 0; shift < rows; shift += 5) {
      const batch = new Float32Array(rows * d);
      for (let p = 0; p < rows; p++) batch.set(x.subarray(((p + shift) % rows) * d, ((p + shift) % rows + 1) * d), p * d);
      const out = await kernel.project(batch, rows);
      for (let p = 0; p < rows; p++) {
        assert.deepEqual(bits(out.subarray(p * k, (p + 1) * k)), bits(alone[(p + shift) % rows]), `row ${(p + shift) % rows} at position ${p}`);
      }
    }
  });

  it('a 1-row call reads only its row: what follows in the buffer does not matter', async () => {
    const withTail = x.slice(0, 3 * d);
    const out = await kernel.project(withTail, 1);
    assert.equal(out.length, k);
    assert.deepEqual(bits(out), bits(alone[0]));
  });
});

describe('openFitKernel against float64 references', () => {
  const g = gaussian(77);
  const rows = 9;
  const dim = 13;
  const basis = 5;

  it('passBlock: M + Xcᵀ·(Xc·Z), (Xc·Z)ᵀ(Xc·Z) and Σ Xc²', async () => {
    const kernel = await openFitKernel(dim, basis, 1);
    try {
      // A block buffer bigger than the rows used, as the fit's last block is.
      const x = Float32Array.from({ length: (rows + 4) * dim }, () => 1 + g());
      const mean = Float32Array.from({ length: dim }, () => 0.5 * g());
      const z = Float32Array.from({ length: dim * basis }, g);
      const m = Float32Array.from({ length: dim * basis }, g);
      const out = await kernel.passBlock(x, rows, mean, z, m);
      const xc = Float64Array.from({ length: rows * dim }, (_, i) => Math.fround(x[i] - mean[i % dim]));
      const p = new Float64Array(rows * basis);
      const pScale = new Float64Array(rows * basis);
      for (let r = 0; r < rows; r++) for (let c = 0; c < basis; c++) for (let i = 0; i < dim; i++) {
        p[r * basis + c] += xc[r * dim + i] * z[i * basis + c];
        pScale[r * basis + c] += Math.abs(xc[r * dim + i] * z[i * basis + c]);
      }
      const wantM = Float64Array.from(m);
      const mScale = Float64Array.from(m, Math.abs);
      for (let i = 0; i < dim; i++) for (let c = 0; c < basis; c++) for (let r = 0; r < rows; r++) {
        wantM[i * basis + c] += xc[r * dim + i] * p[r * basis + c];
        mScale[i * basis + c] += Math.abs(xc[r * dim + i]) * pScale[r * basis + c];
      }
      const wantG = new Float64Array(basis * basis);
      const gScale = new Float64Array(basis * basis);
      for (let a = 0; a < basis; a++) for (let b = 0; b < basis; b++) for (let r = 0; r < rows; r++) {
        wantG[a * basis + b] += p[r * basis + a] * p[r * basis + b];
        gScale[a * basis + b] += pScale[r * basis + a] * pScale[r * basis + b];
      }
      let squares = 0;
      for (let i = 0; i < rows * dim; i++) squares += xc[i] * xc[i];
      // Two chained float32 products: 1e-5 of the magnitude bound is ~100× float32 rounding here.
      assertClose(out.m, wantM, mScale, 1e-5, 'M');
      assertClose(out.g, wantG, gScale, 1e-5, 'G');
      assert.ok(Math.abs(out.squares - squares) <= 1e-5 * squares, `squares ${out.squares} vs ${squares}`);
      // G is symmetric up to rounding, and with M = 0 the output is the product alone.
      const zero = await kernel.passBlock(x, rows, mean, z, new Float32Array(dim * basis));
      const product = Float64Array.from(wantM, (v, i) => v - m[i]);
      assertClose(zero.m, product, mScale, 1e-5, 'M with zero start');
    } finally {
      await kernel.dispose();
    }
  });

  it('gram (AᵀA) and matmul (A·B) in float64', async () => {
    const kernel = await openFitKernel(dim, basis, 1);
    try {
      const [r, c, n] = [11, 6, 4];
      const a = Float64Array.from({ length: r * c }, g);
      const b = Float64Array.from({ length: c * n }, g);
      const gram = await kernel.gram(a, r, c);
      const wantGram = new Float64Array(c * c);
      const gramScale = new Float64Array(c * c);
      for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) for (let p = 0; p < r; p++) {
        wantGram[i * c + j] += a[p * c + i] * a[p * c + j];
        gramScale[i * c + j] += Math.abs(a[p * c + i] * a[p * c + j]);
      }
      // float64 throughout: only summation order differs.
      assertClose(gram, wantGram, gramScale, 1e-13, 'gram');
      const prod = await kernel.matmul(a, r, c, b, n);
      const wantProd = new Float64Array(r * n);
      const prodScale = new Float64Array(r * n);
      for (let i = 0; i < r; i++) for (let j = 0; j < n; j++) for (let p = 0; p < c; p++) {
        wantProd[i * n + j] += a[i * c + p] * b[p * n + j];
        prodScale[i * n + j] += Math.abs(a[i * c + p] * b[p * n + j]);
      }
      assertClose(prod, wantProd, prodScale, 1e-13, 'matmul');
      assert.ok(prod instanceof Float64Array && gram instanceof Float64Array);
    } finally {
      await kernel.dispose();
    }
  });
});
