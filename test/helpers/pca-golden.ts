import { readFileSync } from 'node:fs';
import type { PreTransform } from '../../src/pca/transform.js';
import { fixture } from './shared.js';

/** One case of fixtures/pca-golden.json (scripts/pca_golden.py): sklearn PCA(svd_solver='full'). */
export interface GoldenCase {
  name: string;
  n: number;
  d: number;
  k: number;
  pre: PreTransform;
  /** N×D, exactly the float32 values the golden was computed from. */
  x: Float32Array;
  mean: Float64Array;
  /** K×D, unit rows, sign: largest-|value| entry positive. */
  components: Float64Array;
  explainedVariance: Float64Array;
  totalVariance: number;
  /** ev_k_minus_1 = λ_K, ev_k = λ_{K+1}, ratio = λ_K/λ_{K+1}, min_ratio_within_k = min λ_j/λ_{j+1} for j < K. */
  eigengap: { ev_k_minus_1: number; ev_k: number; ratio: number; min_ratio_within_k: number };
  alpha: number;
  scale: Float64Array;
  projectedRows: number;
  projected: Float64Array;
  projectedWhitened: Float64Array;
  /** How far scikit-learn's randomized solver (default passes) landed from the full one. */
  checks: { max_abs_diff_components_randomized_solver: number; max_rel_diff_explained_variance_randomized_solver: number };
}

interface Raw {
  name: string; n: number; d: number; k: number; pre: PreTransform;
  x: number[][]; mean: number[]; components: number[][]; explained_variance: number[]; total_variance: number;
  eigengap: GoldenCase['eigengap']; alpha: number; scale: number[]; projected_rows: number;
  projected: number[][]; projected_whitened: number[][]; checks: GoldenCase['checks'];
}

export function loadPcaGolden(): GoldenCase[] {
  const json = JSON.parse(readFileSync(fixture('pca-golden.json'), 'utf8')) as { cases: Raw[] };
  return json.cases.map((c) => ({
    name: c.name, n: c.n, d: c.d, k: c.k, pre: c.pre,
    x: Float32Array.from(c.x.flat()),
    mean: Float64Array.from(c.mean),
    components: Float64Array.from(c.components.flat()),
    explainedVariance: Float64Array.from(c.explained_variance),
    totalVariance: c.total_variance,
    eigengap: c.eigengap,
    alpha: c.alpha,
    scale: Float64Array.from(c.scale),
    projectedRows: c.projected_rows,
    projected: Float64Array.from(c.projected.flat()),
    projectedWhitened: Float64Array.from(c.projected_whitened.flat()),
    checks: c.checks,
  }));
}
