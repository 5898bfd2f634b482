import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { preprocess, type InputSpec } from '../../src/backbone/preprocess.js';

/** The arithmetic spelled out per pixel: what the model input's bits must be, whatever preprocess does. */
function expected(data: Uint8Array, width: number, height: number, spec: InputSpec): Float32Array {
  const [lo, hi] = spec.range;
  const scale = (hi - lo) / 255;
  const plane = width * height;
  const out = new Float32Array(data.length);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const x = data[p * 3 + c]! * scale + lo;
      const v = spec.mean || spec.std ? (x - (spec.mean?.[c] ?? 0)) / (spec.std?.[c] ?? 1) : x;
      out[spec.layout === 'nchw' ? c * plane + p : p * 3 + c] = v;
    }
  }
  return out;
}

/** Every byte value in every channel, in both layouts. */
function allValues(): { data: Uint8Array; width: number; height: number } {
  const data = new Uint8Array(256 * 3 * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 255;
  return { data, width: 256, height: 3 };
}

describe('preprocess', () => {
  const specs: InputSpec[] = [
    { range: [-1, 1] },
    { range: [0, 1] },
    { range: [0, 255] },
    { range: [-1, 1], layout: 'nchw' },
    { range: [0, 1], layout: 'nchw', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    { range: [0, 1], layout: 'nhwc', mean: [0.5, 0.25, 0.125] },
    { range: [0, 255], std: [58.4, 57.1, 57.4] },
  ];
  for (const spec of specs) {
    it(`gives the per-pixel formula's float32 bits: ${JSON.stringify(spec)}`, () => {
      const img = allValues();
      const x = preprocess(img, spec);
      const want = expected(img.data, img.width, img.height, spec);
      assert.deepEqual(x.dims, spec.layout === 'nchw' ? [1, 3, 3, 256] : [1, 3, 256, 3]);
      assert.ok(Buffer.from(x.data.buffer).equals(Buffer.from(want.buffer)), 'bit for bit');
    });
  }

  it('refuses a buffer of the wrong length', () => {
    assert.throws(() => preprocess({ data: new Uint8Array(5), width: 1, height: 2 }, { range: [0, 1] }), /5 bytes, expected 1x2x3/);
  });
});
