/**
 * TF kernel layouts → ONNX, and folding per-channel affine ops (Mul/Add/BiasAdd/BatchNorm) into a
 * pending conv's weights: ORT then runs one Conv instead of Conv + elementwise passes.
 */
import type { OnnxBuilder, PendingConv, Val } from './builder.js';
import type { Weight } from './weights.js';

/** TF HWIO → ONNX OIHW. */
export function hwioToOihw(w: Weight): { w: Float32Array; dims: [number, number, number, number] } {
  const [kh, kw, ci, co] = w.shape;
  const out = new Float32Array(w.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) out[((o * ci + i) * kh + y) * kw + x] = w.data[((y * kw + x) * ci + i) * co + o];
  return { w: out, dims: [co, ci, kh, kw] };
}

/** TF depthwise [kh,kw,C,M] → ONNX grouped conv weight [C*M,1,kh,kw] (output channel c*M+m), group C. */
export function depthwiseToOihw(w: Weight): { w: Float32Array; dims: [number, number, number, number]; group: number } {
  const [kh, kw, c, m] = w.shape;
  const out = new Float32Array(w.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let ci = 0; ci < c; ci++)
        for (let mi = 0; mi < m; mi++) out[((ci * m + mi) * kh + y) * kw + x] = w.data[((y * kw + x) * c + ci) * m + mi];
  return { w: out, dims: [c * m, 1, kh, kw], group: c };
}

/** Per-output-channel affine y = conv*scale + shift folded into a pending conv (new object, inputs untouched). */
export function foldAffine(p: PendingConv, scale: ArrayLike<number> | null, shift: ArrayLike<number> | null, foldable: boolean): PendingConv {
  const [o] = p.dims;
  const per = p.w.length / o;
  const w = new Float32Array(p.w);
  const bias = new Float32Array(o);
  for (let c = 0; c < o; c++) {
    const s = scale ? scale[scale.length === 1 ? 0 : c] : 1;
    const b = (p.bias ? p.bias[c] : 0) * s + (shift ? shift[shift.length === 1 ? 0 : c] : 0);
    bias[c] = b;
    if (s !== 1) for (let j = c * per; j < (c + 1) * per; j++) w[j] = w[j] * s;
  }
  return { ...p, w, bias, foldable };
}

/** Inference batch norm as one per-channel affine (computed in float64, stored as float32). */
export function bnAffine(gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null, mean: ArrayLike<number>, variance: ArrayLike<number>, eps: number) {
  const n = mean.length;
  const scale = new Float64Array(n);
  const shift = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    scale[c] = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + eps);
    shift[c] = (beta ? beta[c] : 0) - mean[c] * scale[c];
  }
  return { scale, shift };
}

/**
 * A batch norm already reduced to scale/shift: folded into a foldable pending conv, else emitted as
 * BatchNormalization with mean 0, var 1, epsilon 0 (so it computes exactly x*scale + shift).
 */
export function batchNorm(b: OnnxBuilder, x: Val, name: string, scale: Float64Array, shift: Float64Array, foldable: () => boolean): Val {
  if (x.pending?.foldable) return { ...x, pending: foldAffine(x.pending, scale, shift, foldable()) };
  const n = scale.length;
  const inputs = [b.tensor(x), b.init(`${name}/scale`, [n], scale), b.init(`${name}/shift`, [n], shift)];
  inputs.push(b.init(`${name}/mean`, [n], new Float32Array(n)), b.init(`${name}/var`, [n], new Float32Array(n).fill(1)));
  return { name: b.node('BatchNormalization', inputs, name, [{ name: 'epsilon', type: 'float', f: 0 }]), rank: x.rank, channels: x.channels };
}

/** The pending conv behind `v` when further affine ops may still fold into it. */
export const pendingOf = (v: Val): PendingConv | undefined => (v.pending?.foldable ? v.pending : undefined);
