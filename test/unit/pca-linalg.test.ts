import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cholesky, gaussian, invertUpper, symmetricEigen } from '../../src/pca/linalg.js';

// Row-major n×n helpers in float64.
function mul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let p = 0; p < n; p++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * n + p] * b[p * n + j];
  return c;
}
function transpose(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
  return t;
}
function randomMatrix(n: number, seed: number): Float64Array {
  return Float64Array.from({ length: n * n }, gaussian(seed));
}
function randomSymmetric(n: number, seed: number): Float64Array {
  const b = randomMatrix(n, seed);
  return Float64Array.from(b, (_, i) => (b[i] + b[(i % n) * n + Math.floor(i / n)]) / 2);
}
/** BᵀB + n·I: well-conditioned SPD. */
function randomSpd(n: number, seed: number): Float64Array {
  const b = randomMatrix(n, seed);
  const a = mul(transpose(b, n), b, n);
  for (let i = 0; i < n; i++) a[i * n + i] += n;
  return a;
}
function diag(values: number[]): Float64Array {
  const n = values.length;
  const a = new Float64Array(n * n);
  values.forEach((v, i) => { a[i * n + i] = v; });
  return a;
}
/** A random orthogonal n×n matrix: the eigenvectors of a random symmetric one. */
function randomOrthogonal(n: number, seed: number): Float64Array {
  return symmetricEigen(randomSymmetric(n, seed), n).vectors;
}
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('cholesky', () => {
  for (const n of [1, 2, 7, 50]) {
    it(`R is upper triangular with RᵀR = A for a random ${n}×${n} SPD matrix`, () => {
      const a = randomSpd(n, 100 + n);
      const r = cholesky(a, n);
      assert.ok(r !== undefined);
      for (let i = 0; i < n; i++) {
        assert.ok(r[i * n + i] > 0, `diagonal ${i} positive`);
        for (let j = 0; j < i; j++) assert.equal(r[i * n + j], 0, `below-diagonal (${i},${j}) is zero`);
      }
      const back = mul(transpose(r, n), r, n);
      assert.ok(maxAbsDiff(back, a) <= 1e-12 * maxAbs(a), `max |RᵀR − A| = ${maxAbsDiff(back, a)}`);
    });
  }

  it('returns undefined for an indefinite matrix, a negative one and a singular one', () => {
    // Eigenvalues 3 and −1.
    assert.equal(cholesky(Float64Array.of(1, 2, 2, 1), 2), undefined);
    // Positive diagonal, but an indefinite 3×3 (Q·diag(4, 1, −0.5)·Qᵀ).
    const q = randomOrthogonal(3, 7);
    const a = mul(mul(q, diag([4, 1, -0.5]), 3), transpose(q, 3), 3);
    assert.equal(cholesky(a, 3), undefined);
    assert.equal(cholesky(Float64Array.of(-1), 1), undefined);
    assert.equal(cholesky(Float64Array.of(1, 1, 1, 1), 2), undefined, 'rank 1: pivot 0 is not > 0');
    assert.equal(cholesky(Float64Array.of(NaN), 1), undefined);
  });
});

describe('invertUpper', () => {
  for (const n of [1, 2, 7, 50]) {
    it(`inv · R = R · inv = I for the ${n}×${n} Cholesky factor of a random SPD matrix`, () => {
      const r = cholesky(randomSpd(n, 200 + n), n)!;
      const inv = invertUpper(r, n);
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(inv[i * n + j], 0);
      const id = diag(Array(n).fill(1));
      assert.ok(maxAbsDiff(mul(inv, r, n), id) <= 1e-12, `inv·R: ${maxAbsDiff(mul(inv, r, n), id)}`);
      assert.ok(maxAbsDiff(mul(r, inv, n), id) <= 1e-12, `R·inv: ${maxAbsDiff(mul(r, inv, n), id)}`);
    });
  }
});

/**
 * The three properties of a symmetric eigendecomposition: A·v = λ·v for every column, VᵀV = I, values
 * descending. Tolerances relative to ‖A‖ (max |entry| · n bounds the spectral norm): tred2/tql2 are
 * backward stable, residuals ~ n·eps·‖A‖.
 */
function checkEigen(a: Float64Array, n: number, label: string, expected?: number[]) {
  const { values, vectors } = symmetricEigen(a, n);
  assert.equal(values.length, n);
  assert.equal(vectors.length, n * n);
  const norm = Math.max(maxAbs(a) * n, 1e-300);
  for (let j = 0; j < n; j++) {
    let residual = 0;
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let p = 0; p < n; p++) av += a[i * n + p] * vectors[p * n + j];
      residual = Math.max(residual, Math.abs(av - values[j] * vectors[i * n + j]));
    }
    assert.ok(residual <= 1e-12 * norm, `${label}: |A·v − λ·v| = ${residual} for column ${j}`);
  }
  const vtv = mul(transpose(vectors, n), vectors, n);
  const err = maxAbsDiff(vtv, diag(Array(n).fill(1)));
  assert.ok(err <= 1e-12, `${label}: |VᵀV − I| = ${err}`);
  for (let j = 1; j < n; j++) assert.ok(values[j - 1] >= values[j], `${label}: values descending at ${j}`);
  if (expected) {
    const want = [...expected].sort((x, y) => y - x);
    for (let j = 0; j < n; j++) assert.ok(Math.abs(values[j] - want[j]) <= 1e-12 * norm, `${label}: λ${j} = ${values[j]}, want ${want[j]}`);
  }
  return { values, vectors };
}

describe('symmetricEigen', () => {
  for (const n of [1, 2, 7, 50]) {
    it(`random symmetric ${n}×${n}: A·v = λ·v, orthonormal vectors, descending values`, () => {
      for (const seed of [1, 2, 3]) checkEigen(randomSymmetric(n, 1000 * n + seed), n, `n=${n} seed=${seed}`);
    });
  }

  it('recovers a known spectrum: Q·diag(λ)·Qᵀ with a random orthogonal Q (n = 7, 50)', () => {
    for (const n of [7, 50]) {
      const lambda = Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * (i + 1) * 0.37);
      const q = randomOrthogonal(n, 31 + n);
      checkEigen(mul(mul(q, diag(lambda), n), transpose(q, n), n), n, `known n=${n}`, lambda);
    }
  });

  it('the sum of the eigenvalues is the trace and the sum of their squares the Frobenius norm²', () => {
    const n = 50;
    const a = randomSymmetric(n, 77);
    const { values } = symmetricEigen(a, n);
    let trace = 0;
    let frob = 0;
    for (let i = 0; i < n; i++) trace += a[i * n + i];
    for (const v of a) frob += v * v;
    assert.ok(Math.abs(values.reduce((s, v) => s + v, 0) - trace) <= 1e-10);
    assert.ok(Math.abs(values.reduce((s, v) => s + v * v, 0) - frob) <= 1e-10 * frob);
  });

  it('repeated eigenvalues: identity, a diagonal with ties, and a rotated matrix with ties', () => {
    for (const n of [1, 2, 7, 50]) checkEigen(diag(Array(n).fill(1)), n, `identity n=${n}`, Array(n).fill(1));
    const ties = [3, 1, 3, -2, 1, 3, 0];
    checkEigen(diag(ties), 7, 'diagonal with ties', ties);
    const tied50 = Array.from({ length: 50 }, (_, i) => [5, 2, 2, -1, 0][i % 5]);
    const q = randomOrthogonal(50, 5);
    checkEigen(mul(mul(q, diag(tied50), 50), transpose(q, 50), 50), 50, 'rotated with ties n=50', tied50);
  });

  it('a zero matrix: all values 0, vectors still orthonormal', () => {
    for (const n of [1, 2, 7, 50]) {
      const { values } = checkEigen(new Float64Array(n * n), n, `zero n=${n}`);
      for (const v of values) assert.equal(v, 0);
    }
  });

  it('n = 1: the value is the entry and the vector ±1', () => {
    const { values, vectors } = symmetricEigen(Float64Array.of(-2.5), 1);
    assert.deepEqual([...values], [-2.5]);
    assert.equal(Math.abs(vectors[0]), 1);
  });

  it('does not modify its input', () => {
    const a = randomSymmetric(7, 9);
    const copy = Float64Array.from(a);
    symmetricEigen(a, 7);
    assert.deepEqual(a, copy);
  });
});

describe('gaussian', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const draw = (seed: number) => { const g = gaussian(seed); return Array.from({ length: 101 }, g); };
    assert.deepEqual(draw(42), draw(42));
    assert.notDeepEqual(draw(42), draw(43));
    assert.notDeepEqual(draw(0), draw(1));
  });

  it('10,000 draws look like N(0, 1): mean, variance, tails, no repeats', () => {
    const g = gaussian(12345);
    const n = 10_000;
    const xs = Array.from({ length: n }, g);
    assert.ok(xs.every(Number.isFinite));
    const mean = xs.reduce((s, v) => s + v, 0) / n;
    const variance = xs.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1);
    // Standard error of the mean 0.01, of the variance ~0.014: bounds are > 5 standard errors.
    assert.ok(Math.abs(mean) < 0.05, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 0.08, `variance ${variance}`);
    // P(|x| > 1) = 0.3173, P(|x| > 2) = 0.0455 for N(0, 1).
    const beyond1 = xs.filter((v) => Math.abs(v) > 1).length / n;
    const beyond2 = xs.filter((v) => Math.abs(v) > 2).length / n;
    assert.ok(Math.abs(beyond1 - 0.3173) < 0.025, `P(|x| > 1) = ${beyond1}`);
    assert.ok(Math.abs(beyond2 - 0.0455) < 0.012, `P(|x| > 2) = ${beyond2}`);
    // Symmetric: about half positive.
    const positive = xs.filter((v) => v > 0).length / n;
    assert.ok(Math.abs(positive - 0.5) < 0.03, `positive share ${positive}`);
    assert.equal(new Set(xs).size, n, 'no repeated draws');
  });
});
