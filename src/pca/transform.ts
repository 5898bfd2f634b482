/**
 * The element-wise steps around the projection's matrix product, pure: the pre-transform applied to
 * a raw descriptor before centring, and the whitening scale and L2 applied after. The whole map is
 *   y = scale ⊙ (components · (pre(x) − mean)),  then y / ‖y‖
 */
import { PRE_TRANSFORMS, type PreTransform } from '../core/options.js';

export { PRE_TRANSFORMS, type PreTransform };

/**
 * 'l2' (the default: best mAP on the shared labelled photos, scripts/pca_quality.json): L2 only;
 * 'sqrt': signed square root then L2 (RootSIFT's step); 'none': as extracted. Computed in float64,
 * rounded once to float32. A zero vector stays zero.
 */
export function preTransform(x: Float32Array, pre: PreTransform, out: Float32Array = new Float32Array(x.length)): Float32Array {
  if (pre === 'none') {
    out.set(x);
    return out;
  }
  let sum = 0;
  if (pre === 'sqrt') {
    for (let i = 0; i < x.length; i++) sum += Math.abs(x[i]);
  } else {
    for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
  }
  const inv = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  if (pre === 'sqrt') {
    for (let i = 0; i < x.length; i++) out[i] = Math.sign(x[i]) * Math.sqrt(Math.abs(x[i])) * inv;
  } else {
    for (let i = 0; i < x.length; i++) out[i] = x[i] * inv;
  }
  return out;
}

/**
 * Regularised whitening: 1 / sqrt(λ_k + alpha · mean(λ)), the mean over the K kept eigenvalues.
 * alpha → 0 is plain PCA-whitening (which amplifies the noisy small components, hurting retrieval
 * when few images were fitted); large alpha approaches no whitening. Without whitening: all ones.
 */
export function whitenScale(explainedVariance: Float32Array, alpha: number | null): Float32Array {
  if (alpha === null) return new Float32Array(explainedVariance.length).fill(1);
  const mean = explainedVariance.reduce((a, b) => a + b, 0) / explainedVariance.length;
  return Float32Array.from(explainedVariance, (v) => 1 / Math.sqrt(Math.max(0, v) + alpha * mean));
}

/** Scale then L2 each of `rows` rows of `k` values, in float64; a zero row stays zero. */
export function finishRows(y: Float32Array, rows: number, k: number, scale: Float32Array): Float32Array[] {
  const out: Float32Array[] = [];
  const row = new Float64Array(k);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < k; j++) {
      row[j] = y[r * k + j] * scale[j];
      sum += row[j] * row[j];
    }
    const inv = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    out.push(Float32Array.from(row, (v) => v * inv));
  }
  return out;
}

/**
 * One row through the whole map, in float64 in JS (no ONNX Runtime), for callers that must stay
 * synchronous (a region describer's per-box function). Equal to the projector's rows within rounding.
 */
export function projectRowSync(
  p: { meta: { dim: number; pre: PreTransform; descriptor: { dim: number } }; mean: Float32Array; components: Float32Array; scale: Float32Array },
  row: Float32Array,
): Float32Array {
  const d = p.meta.descriptor.dim;
  const k = p.meta.dim;
  if (row.length !== d) throw new RangeError(`a descriptor of ${row.length} values cannot take a projection fitted on ${d}`);
  const x = preTransform(row, p.meta.pre);
  const y = new Float32Array(k);
  for (let c = 0; c < k; c++) {
    let sum = 0;
    for (let j = 0; j < d; j++) sum += p.components[c * d + j] * (x[j] - p.mean[j]);
    y[c] = sum;
  }
  return finishRows(y, 1, k, p.scale)[0];
}
