import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PRE_TRANSFORMS, finishRows, preTransform, whitenScale } from '../../src/pca/transform.js';
import { loadPcaGolden } from '../helpers/pca-golden.js';

const golden = loadPcaGolden();

/**
 * The golden's projected rows are float64 end to end; here the inputs of each step are float32 as in
 * the real pipeline (pre(x) rounded once, mean and components stored as float32, the product's
 * output float32), each rounding ~6e-8 relative. The outputs are unit vectors (entries ≤ 1), and
 * the worst conditioning is a row whose y has small norm compared with its terms: 1e-5 absolute
 * leaves ~100× room over float32 rounding and still catches any wrong step (a missing pre-transform,
 * mean, scale or L2 moves entries by ≥ 1e-2).
 */
const TOL = 1e-5;

describe('the projection formula against the scikit-learn golden', () => {
  for (const c of golden) {
    it(`${c.name} (pre ${c.pre}): pre → centre → components → scale → L2`, () => {
      const { d, k, projectedRows: rows } = c;
      const mean = Float32Array.from(c.mean);
      const components = Float32Array.from(c.components);
      const y = new Float32Array(rows * k);
      for (let r = 0; r < rows; r++) {
        const p = preTransform(c.x.subarray(r * d, (r + 1) * d), c.pre);
        for (let j = 0; j < k; j++) {
          let s = 0;
          for (let i = 0; i < d; i++) s += components[j * d + i] * (p[i] - mean[i]);
          y[r * k + j] = s;
        }
      }
      const ev = Float32Array.from(c.explainedVariance);
      const scale = whitenScale(ev, c.alpha);
      assert.equal(scale.length, k);
      for (let j = 0; j < k; j++) {
        // float32 eigenvalues in, float32 scale out: a few ulps.
        assert.ok(Math.abs(scale[j] - c.scale[j]) <= 1e-6 * c.scale[j], `scale[${j}] ${scale[j]} vs ${c.scale[j]}`);
      }
      const ones = whitenScale(ev, null);
      assert.deepEqual([...ones], Array(k).fill(1));
      for (const [label, s, want] of [['unwhitened', ones, c.projected], ['whitened', scale, c.projectedWhitened]] as const) {
        const out = finishRows(y, rows, k, s);
        assert.equal(out.length, rows);
        for (let r = 0; r < rows; r++) {
          assert.equal(out[r].length, k);
          let norm = 0;
          for (let j = 0; j < k; j++) {
            norm += out[r][j] ** 2;
            const err = Math.abs(out[r][j] - want[r * k + j]);
            assert.ok(err <= TOL, `${label} row ${r}[${j}]: ${out[r][j]} vs ${want[r * k + j]} (|Δ| ${err.toExponential(2)})`);
          }
          assert.ok(Math.abs(norm - 1) <= 1e-6, `${label} row ${r}: unit norm (${norm})`);
        }
      }
    });
  }

  it('whitening matters on the golden: whitened and unwhitened rows differ', () => {
    // Guards the comparison above against a golden where scale is ~constant (it would not test it).
    for (const c of golden) {
      const diff = c.projected.reduce((m, v, i) => Math.max(m, Math.abs(v - c.projectedWhitened[i])), 0);
      assert.ok(diff > 1e-2, `${c.name}: ${diff}`);
    }
  });
});

describe('preTransform', () => {
  it('a zero vector stays zero (no NaN) for every pre-transform', () => {
    for (const pre of PRE_TRANSFORMS) {
      const out = preTransform(new Float32Array(5), pre);
      assert.deepEqual([...out], [0, 0, 0, 0, 0], pre);
    }
  });

  it("'sqrt': signed square root, then L2, by hand", () => {
    // s = sign(x)·√|x| = (2, −3, 0, 1, 0.5); ‖s‖² = 4 + 9 + 0 + 1 + 0.25 = 14.25.
    const out = preTransform(Float32Array.of(4, -9, 0, 1, 0.25), 'sqrt');
    const norm = Math.sqrt(14.25);
    const want = [2, -3, 0, 1, 0.5].map((v) => Math.fround(v / norm));
    assert.deepEqual([...out], want);
  });

  it("'l2' divides by the norm; 'none' copies", () => {
    assert.deepEqual([...preTransform(Float32Array.of(3, 0, -4), 'l2')], [0.6, 0, -0.8].map(Math.fround));
    const x = Float32Array.of(1.5, -2, 1e-30);
    const same = preTransform(x, 'none');
    assert.deepEqual(same, x);
    assert.notEqual(same, x, 'a copy, not the input');
  });

  it('writes into `out` when given, and leaves its input alone', () => {
    const x = Float32Array.of(1, 2, 2);
    const out = new Float32Array(3).fill(7);
    assert.equal(preTransform(x, 'l2', out), out);
    assert.deepEqual([...out], [1 / 3, 2 / 3, 2 / 3].map(Math.fround));
    assert.deepEqual([...x], [1, 2, 2]);
  });
});

describe('whitenScale and finishRows', () => {
  it('whitenScale = 1/√(λ + α·mean(λ)), by hand', () => {
    // mean = 2; α = 0.5 → 1/√(λ + 1).
    const s = whitenScale(Float32Array.of(3, 2, 1, 2), 0.5);
    assert.deepEqual([...s], [1 / 2, 1 / Math.sqrt(3), 1 / Math.sqrt(2), 1 / Math.sqrt(3)].map(Math.fround));
    // α = 0: plain PCA whitening.
    assert.deepEqual([...whitenScale(Float32Array.of(4, 0.25), 0)], [0.5, 2]);
  });

  it('finishRows scales then L2-normalises each row; a zero row stays zero', () => {
    const y = Float32Array.of(3, 4, 0, 0, 1, 1);
    const out = finishRows(y, 3, 2, Float32Array.of(1, 2));
    // (3, 8)/√73, then zeros, then (1, 2)/√5.
    assert.deepEqual([...out[0]], [3 / Math.sqrt(73), 8 / Math.sqrt(73)].map(Math.fround));
    assert.deepEqual([...out[1]], [0, 0]);
    assert.deepEqual([...out[2]], [1 / Math.sqrt(5), 2 / Math.sqrt(5)].map(Math.fround));
  });
});
