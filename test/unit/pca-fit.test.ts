import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PcaFitError, fitPcaRows, memoryRows, type PcaResult } from '../../src/pca/fit.js';
import { gaussian } from '../../src/pca/linalg.js';
import { preTransform } from '../../src/pca/transform.js';
import { loadPcaGolden, type GoldenCase } from '../helpers/pca-golden.js';

const golden = loadPcaGolden();

/** pre(X) row by row, as the fit's caller does: float64 inside, one rounding to float32. */
function preRows(c: GoldenCase): Float32Array {
  const out = new Float32Array(c.n * c.d);
  for (let i = 0; i < c.n; i++) preTransform(c.x.subarray(i * c.d, (i + 1) * c.d), c.pre, out.subarray(i * c.d, (i + 1) * c.d));
  return out;
}

const fit = (x: Float32Array, n: number, d: number, o: Parameters<typeof fitPcaRows>[1]) => fitPcaRows(memoryRows(x, n, d), o);

/**
 * Tolerances. The fit's big products run in float32 (ORT GEMM), so the covariance it sees is off by
 * E with ‖E‖ ~ c·eps32·λ₁ (eps32 = 6e-8). First-order perturbation theory then bounds
 *   |Δλ_j| / λ_j  ≲ ‖E‖ / λ_j          → EV_COEF · λ₁/λ_j
 *   ‖Δv_j‖        ≲ ‖E‖ / gap_j        → VEC_COEF · λ₁/gap_j,  gap_j = min |λ_j − λ_{j±1}|
 * with λ_{K+1} (the golden's eigengap.ev_k) as the last component's lower neighbour: a component
 * whose eigenvalue is nearly tied with a neighbour converges slower and is less determined, and its
 * tolerance grows as 1/gap. The coefficients are ~16× (EV) and ~17× (VEC) eps32: on the four golden
 * cases, fitted to convergence, the measured ratios stay ≤ 3e-7 and ≤ 7e-8.
 */
const EV_COEF = 2e-6;
const VEC_COEF = 1e-6;
/** Passes that converge every golden case to float32 noise (the default rule stops at 5 or 8). */
const CONVERGED_PASSES = 20;

interface Tolerance {
  /** Relative, per eigenvalue. */
  ev: number[];
  /** ‖ours − golden‖₂ per component. */
  vec: number[];
  /** Where set: a component may instead be within this of the golden entry by entry (max |Δ|). */
  maxAbs?: number;
}

function f32Tolerance(c: GoldenCase): Tolerance {
  const ev = [...c.explainedVariance, c.eigengap.ev_k];
  const ev1 = ev[0];
  const tol: Tolerance = { ev: [], vec: [] };
  for (let j = 0; j < c.k; j++) {
    const gap = Math.min(j > 0 ? ev[j - 1] - ev[j] : Infinity, ev[j] - ev[j + 1]);
    tol.ev.push(EV_COEF * ev1 / ev[j]);
    tol.vec.push(VEC_COEF * ev1 / gap);
  }
  return tol;
}

/** Largest-|value| entry (first on ties) is positive: scikit-learn's svd_flip convention. */
function assertSignConvention(components: ArrayLike<number>, k: number, d: number, label: string) {
  for (let j = 0; j < k; j++) {
    let big = 0;
    for (let i = 0; i < d; i++) if (Math.abs(components[j * d + i]) > Math.abs(big)) big = components[j * d + i];
    assert.ok(big > 0, `${label}: component ${j}'s largest-magnitude entry ${big} is negative`);
  }
}

function compareToGolden(c: GoldenCase, r: PcaResult, tol: Tolerance, label: string) {
  const { n, d, k } = c;
  assert.equal(r.rows, n);
  assert.equal(r.mean.length, d);
  assert.equal(r.components.length, k * d);
  assert.equal(r.explainedVariance.length, k);
  // Mean: a float64 sum of float32 rows rounded once to float32; pre(x) itself was rounded to
  // float32 (the golden keeps it float64): a few float32 ulps of the data's scale.
  const scale = Math.max(...Array.from(c.x, Math.abs), 1e-30);
  const dataScale = c.pre === 'none' ? scale : 1;
  for (let j = 0; j < d; j++) {
    assert.ok(Math.abs(r.mean[j] - c.mean[j]) <= 1e-6 * dataScale, `${label}: mean[${j}] ${r.mean[j]} vs ${c.mean[j]}`);
  }
  // Total variance: one float32 ReduceSum of squares per block, summed in float64.
  assert.ok(Math.abs(r.totalVariance - c.totalVariance) <= 5e-6 * c.totalVariance, `${label}: total variance ${r.totalVariance} vs ${c.totalVariance}`);
  for (let j = 0; j < k; j++) {
    const rel = Math.abs(r.explainedVariance[j] - c.explainedVariance[j]) / c.explainedVariance[j];
    assert.ok(rel <= tol.ev[j], `${label}: explained variance ${j}: ${r.explainedVariance[j]} vs ${c.explainedVariance[j]} (rel ${rel.toExponential(2)} > ${tol.ev[j].toExponential(2)})`);
  }
  assertSignConvention(r.components, k, d, label);
  for (let j = 0; j < k; j++) {
    let dot = 0;
    let diff = 0;
    for (let i = 0; i < d; i++) {
      dot += r.components[j * d + i] * c.components[j * d + i];
      diff += (r.components[j * d + i] - c.components[j * d + i]) ** 2;
    }
    // |dot| = 1 − ‖Δ‖²/2 for unit vectors; float32 rows are unit only to ~1e-7.
    let maxAbs = 0;
    for (let i = 0; i < d; i++) maxAbs = Math.max(maxAbs, Math.abs(r.components[j * d + i] - c.components[j * d + i]));
    if (tol.maxAbs !== undefined && Math.sqrt(diff) > tol.vec[j]) {
      assert.ok(maxAbs <= tol.maxAbs, `${label}: component ${j}: max |Δ| = ${maxAbs.toExponential(2)} > ${tol.maxAbs.toExponential(2)}`);
      assert.ok(dot > 0, `${label}: component ${j} has the golden's sign`);
      continue;
    }
    assert.ok(Math.abs(Math.abs(dot) - 1) <= tol.vec[j] ** 2 / 2 + 3e-7, `${label}: component ${j}: |dot| = ${Math.abs(dot)}`);
    // Same sign as the golden, entry by entry: ‖ours − golden‖ (not ‖ours + golden‖) is small.
    assert.ok(Math.sqrt(diff) <= tol.vec[j], `${label}: component ${j}: ‖Δ‖ = ${Math.sqrt(diff).toExponential(2)} > ${tol.vec[j].toExponential(2)}`);
  }
}

describe('fitPcaRows against scikit-learn (fixtures/pca-golden.json)', () => {
  it('has the four cases, incl. D > N and every pre-transform', () => {
    assert.equal(golden.length, 4);
    assert.ok(golden.some((c) => c.d > c.n));
    assert.deepEqual(new Set(golden.map((c) => c.pre)), new Set(['none', 'l2', 'sqrt']));
  });

  for (const c of golden) {
    it(`${c.name}: converged fit (${CONVERGED_PASSES} passes) matches to float32 noise`, async () => {
      const r = await fit(preRows(c), c.n, c.d, { k: c.k, passes: CONVERGED_PASSES });
      compareToGolden(c, r, f32Tolerance(c), c.name);
    });

    it(`${c.name}: default passes match within the randomized solver's own error`, async () => {
      const r = await fit(preRows(c), c.n, c.d, { k: c.k });
      // With scikit-learn's pass rule, subspace iteration stops before convergence where the
      // spectrum decays slowly (relu-sqrt: consecutive ratios 1.13–1.5 well past K, so the last
      // components converge like (λ_{L+1}/λ_j)^{2q} with few passes). scikit-learn's own
      // randomized solver with the same rule is off by checks.max_abs_diff_components_randomized_solver
      // (4.7e-3 there, ~1e-7..1e-12 elsewhere); the error's constant depends on the random start,
      // so allow 5× it (entry by entry, as the check is), or the float32 tolerance where that is larger.
      const f32 = f32Tolerance(c);
      const tol: Tolerance = {
        ev: f32.ev.map((t) => Math.max(t, 5 * c.checks.max_rel_diff_explained_variance_randomized_solver)),
        vec: f32.vec,
        maxAbs: 5 * c.checks.max_abs_diff_components_randomized_solver,
      };
      compareToGolden(c, r, tol, `${c.name} default passes`);
    });
  }
});

describe('fitPcaRows streaming, limits and determinism', () => {
  it('the block size does not change the answer beyond float32 noise (blockRows 1, 7, all)', async () => {
    for (const c of golden) {
      const x = preRows(c);
      const all = await fit(x, c.n, c.d, { k: c.k, blockRows: c.n });
      // Against the golden with the default passes, as above, but both relative to each other:
      // blocks only regroup float32 partial sums of M (D×L) and G (L×L), the float32 tolerance.
      const tol = f32Tolerance(c);
      for (const blockRows of [1, 7]) {
        const r = await fit(x, c.n, c.d, { k: c.k, blockRows });
        const label = `${c.name} blockRows=${blockRows}`;
        assert.deepEqual(r.mean, all.mean, `${label}: mean (computed by memoryRows, not per block)`);
        assert.ok(Math.abs(r.totalVariance - all.totalVariance) <= 5e-6 * all.totalVariance, `${label}: total variance`);
        for (let j = 0; j < c.k; j++) {
          const rel = Math.abs(r.explainedVariance[j] - all.explainedVariance[j]) / all.explainedVariance[j];
          assert.ok(rel <= tol.ev[j], `${label}: explained variance ${j} rel ${rel.toExponential(2)}`);
          let diff = 0;
          for (let i = 0; i < c.d; i++) diff += (r.components[j * c.d + i] - all.components[j * c.d + i]) ** 2;
          assert.ok(Math.sqrt(diff) <= tol.vec[j], `${label}: component ${j} ‖Δ‖ = ${Math.sqrt(diff).toExponential(2)} > ${tol.vec[j].toExponential(2)}`);
        }
      }
    }
  });

  it('two fits with the same options give bit-identical results; another seed does not', async () => {
    const c = golden.find((g) => g.name.startsWith('relu'))!;
    const x = preRows(c);
    const a = await fit(x, c.n, c.d, { k: c.k, blockRows: 7 });
    const b = await fit(x, c.n, c.d, { k: c.k, blockRows: 7 });
    assert.deepEqual(a.components, b.components);
    assert.deepEqual(a.explainedVariance, b.explainedVariance);
    assert.deepEqual(a.mean, b.mean);
    assert.equal(a.totalVariance, b.totalVariance);
    // The seed is used: a different start basis lands elsewhere in the last bits (this case is not
    // converged with the default passes, so it differs by more than rounding).
    const other = await fit(x, c.n, c.d, { k: c.k, blockRows: 7, seed: 1 });
    assert.notDeepEqual(other.components, a.components);
  });

  it('rejects K > N − 1, K > D and K < 1', async () => {
    const g = gaussian(3);
    const x = Float32Array.from({ length: 5 * 8 }, g);
    await assert.rejects(fit(x, 5, 8, { k: 5 }), (e: unknown) => e instanceof PcaFitError && /5 components need more than 5 rows/.test(e.message));
    await assert.rejects(fit(x, 5, 8, { k: 9 }), PcaFitError);
    const wide = Float32Array.from({ length: 20 * 4 }, g);
    await assert.rejects(fit(wide, 20, 4, { k: 5 }), (e: unknown) => e instanceof PcaFitError && /at least 5 columns/.test(e.message));
    await assert.rejects(fit(x, 5, 8, { k: 0 }), RangeError);
    await assert.rejects(fit(x, 5, 8, { k: 1.5 }), RangeError);
    await assert.rejects(fit(x.subarray(0, 8), 1, 8, { k: 1 }), (e: unknown) => e instanceof PcaFitError && /at least 2 rows/.test(e.message));
    // The boundary is accepted: K = N − 1.
    const r = await fit(x, 5, 8, { k: 4 });
    assert.equal(r.explainedVariance.length, 4);
  });

  it('a sample of 3 distinct rows repeated (rank 2 once centred) cannot give 5 components', async () => {
    const g = gaussian(11);
    const d = 12;
    const distinct = Array.from({ length: 3 }, () => Float32Array.from({ length: d }, g));
    const x = new Float32Array(30 * d);
    for (let i = 0; i < 30; i++) x.set(distinct[i % 3], i * d);
    await assert.rejects(fit(x, 30, d, { k: 5 }), (e: unknown) => e instanceof PcaFitError && /spans only 2 dimensions/.test(e.message));
    // ... and 2 components of it are fine: all of the variance is in them.
    const r = await fit(x, 30, d, { k: 2 });
    const kept = r.explainedVariance[0] + r.explainedVariance[1];
    assert.ok(Math.abs(kept - r.totalVariance) <= 1e-5 * r.totalVariance, `kept ${kept} of ${r.totalVariance}`);
  });

  it('rows that are all the same have no variance to fit', async () => {
    const row = Float32Array.from({ length: 6 }, gaussian(2));
    const x = new Float32Array(10 * 6);
    for (let i = 0; i < 10; i++) x.set(row, i * 6);
    await assert.rejects(fit(x, 10, 6, { k: 1 }), PcaFitError);
  });

  it('tied eigenvalues: the tied components span the right subspace', async () => {
    // X = U·diag(σ)·Vᵀ + μ with U's columns centred and orthonormal: the covariance's eigenvalues
    // are σ²/(N−1) exactly, here with a three-fold tie (4, 4, 4) after the first. Within a tie the
    // individual vectors are arbitrary (and float32 storage splits the tie by ~1e-7, so the fit
    // converges slowly there): only the 3-dimensional subspace is determined.
    const n = 60;
    const d = 20;
    const k = 4;
    const lambda = [9, 4, 4, 4, 1, 0.5, 0.25, 0.12, 0.06, 0.03, 0.02, 0.01];
    const r = lambda.length;
    const g = gaussian(99);
    const vt = orthonormalColumns(d, r, g); // d×r
    const u = orthonormalColumns(n, r, g, true); // n×r, centred
    const mu = Array.from({ length: d }, g);
    const x = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        let s = mu[j];
        for (let p = 0; p < r; p++) s += u[i * r + p] * Math.sqrt(lambda[p] * (n - 1)) * vt[j * r + p];
        x[i * d + j] = s;
      }
    }
    const fitted = await fit(x, n, d, { k });
    for (let j = 0; j < k; j++) {
      assert.ok(Math.abs(fitted.explainedVariance[j] - lambda[j]) <= 1e-5 * lambda[0], `λ${j} = ${fitted.explainedVariance[j]}, want ${lambda[j]}`);
    }
    // Component 0 (gap 5) individually, up to sign.
    let dot0 = 0;
    for (let i = 0; i < d; i++) dot0 += fitted.components[i] * vt[i * r];
    assert.ok(Math.abs(Math.abs(dot0) - 1) <= 1e-6, `component 0: |dot| ${Math.abs(dot0)}`);
    // Components 1..3 against V's columns 1..3: the projector onto each span, ‖P − Q‖_F.
    const projector = (vec: (row: number, col: number) => number) => {
      const p = new Float64Array(d * d);
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) for (let c = 1; c <= 3; c++) p[a * d + b] += vec(a, c) * vec(b, c);
      return p;
    };
    const pFit = projector((row, col) => fitted.components[col * d + row]);
    const pTrue = projector((row, col) => vt[row * r + col]);
    let frob = 0;
    for (let i = 0; i < d * d; i++) frob += (pFit[i] - pTrue[i]) ** 2;
    assert.ok(Math.sqrt(frob) <= 1e-5, `tied subspace: ‖P_fit − P_true‖_F = ${Math.sqrt(frob)}`);
    assertSignConvention(fitted.components, k, d, 'tied');
  });
});

/** rows×cols with orthonormal columns (modified Gram–Schmidt, twice), optionally orthogonal to 1 too. */
function orthonormalColumns(rows: number, cols: number, g: () => number, centred = false): Float64Array {
  const q = Float64Array.from({ length: rows * cols }, g);
  for (let pass = 0; pass < 2; pass++) {
    for (let c = 0; c < cols; c++) {
      if (centred) {
        let m = 0;
        for (let i = 0; i < rows; i++) m += q[i * cols + c];
        for (let i = 0; i < rows; i++) q[i * cols + c] -= m / rows;
      }
      for (let p = 0; p < c; p++) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += q[i * cols + c] * q[i * cols + p];
        for (let i = 0; i < rows; i++) q[i * cols + c] -= dot * q[i * cols + p];
      }
      let norm = 0;
      for (let i = 0; i < rows; i++) norm += q[i * cols + c] ** 2;
      for (let i = 0; i < rows; i++) q[i * cols + c] /= Math.sqrt(norm);
    }
  }
  return q;
}
