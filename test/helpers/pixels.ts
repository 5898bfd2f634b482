import type { RgbImage } from '../../src/backbone/tfjs/backbone.js';

/** Deterministic noise pixels (LCG), so model tests need no image files. */
export function syntheticPixels(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return { data, width, height };
}
