/** TF constants (NHWC-shaped) made usable next to NCHW values: broadcastable initializers, fold factors. */
import type { OnnxBuilder, Val } from './builder.js';
import type { Weight } from './weights.js';

/** Scalar, or one value per channel with every leading dim 1. */
function isPerChannel(w: Weight, channels: number | undefined): boolean {
  return w.data.length === channels && (w.shape.length === 1 || w.shape.slice(0, -1).every((d) => d === 1));
}

/** A constant made broadcastable against an NCHW (rank 4) or NC (rank 2) value; undefined if its shape cannot be mapped. */
export function layoutConst(b: OnnxBuilder, w: Weight, x: Val, base: string): string | undefined {
  const rank = x.rank;
  const data = Float32Array.from(w.data);
  const n = data.length;
  if (n === 1) return b.init(base, [], data);
  if (isPerChannel(w, x.channels)) return rank === 4 ? b.init(base, [n, 1, 1], data) : b.init(base, [n], data);
  const s = w.shape;
  if (s.length === 4 && rank === 4) {
    // A full NHWC tensor: transpose to NCHW.
    const [n0, h, ww, c] = s;
    const out = new Float32Array(n);
    for (let a = 0; a < n0; a++) for (let y = 0; y < h; y++) for (let x = 0; x < ww; x++) for (let k = 0; k < c; k++) out[((a * c + k) * h + y) * ww + x] = data[((a * h + y) * ww + x) * c + k];
    return b.init(base, [n0, c, h, ww], out);
  }
  return undefined;
}

/** Per-channel (or scalar) constant values, for folding. */
export function perChannelConst(w: Weight | undefined, channels: number): Float32Array | undefined {
  if (!w) return undefined;
  return w.data.length === 1 || isPerChannel(w, channels) ? Float32Array.from(w.data) : undefined;
}
