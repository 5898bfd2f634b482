/**
 * The decode stage's pure parts: the size policy (workingSize) and its options, checked without
 * decoding anything. Images themselves: test/integration/decode.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_DECODE_OPTIONS, DecodeError, decodeImage, validateDecodeOptions, workingSize } from '../../src/decode/decode.js';

// ---------------------------------------------------------------- workingSize (pure)

test('workingSize: shorter side to size, aspect kept within rounding', () => {
  const o = { size: 224, maxSide: null };
  assert.deepEqual(workingSize(1800, 1200, o), { width: 336, height: 224 });
  assert.deepEqual(workingSize(1200, 1800, o), { width: 224, height: 336 });
  assert.deepEqual(workingSize(500, 500, o), { width: 224, height: 224 });
  assert.deepEqual(workingSize(640, 480, o), { width: 299, height: 224 }); // 298.67 rounds up
  assert.deepEqual(workingSize(1, 1, o), { width: 224, height: 224 });
  assert.deepEqual(workingSize(2, 1, o), { width: 448, height: 224 });
  for (let w = 1; w <= 300; w += 7) {
    for (let h = 1; h <= 300; h += 11) {
      const r = workingSize(w, h, o);
      assert.equal(Math.min(r.width, r.height), 224, `${w}x${h}`);
      const exactLong = (Math.max(w, h) * 224) / Math.min(w, h);
      assert.ok(Math.abs(Math.max(r.width, r.height) - exactLong) <= 0.5, `${w}x${h} -> ${r.width}x${r.height}`);
      assert.equal(r.width >= r.height, w >= h, `${w}x${h} orientation kept`);
    }
  }
});

test('workingSize: maxSide caps the longer side, shorter side never below 1', () => {
  assert.equal(DEFAULT_DECODE_OPTIONS.maxSide, 4096);
  const o = { size: 224, maxSide: 4096 };
  assert.deepEqual(workingSize(1, 20000, o), { width: 1, height: 4096 }); // 224x4480000 uncapped
  assert.deepEqual(workingSize(20000, 1, o), { width: 4096, height: 1 });
  assert.deepEqual(workingSize(256, 10, o), { width: 4096, height: 160 });
  assert.deepEqual(workingSize(10, 256, o), { width: 160, height: 4096 });
  assert.deepEqual(workingSize(4096, 224, o), { width: 4096, height: 224 }); // exactly at the cap
  assert.deepEqual(workingSize(1800, 1200, o), { width: 336, height: 224 }); // far from the cap
  // maxSide below size: the cap wins.
  assert.deepEqual(workingSize(300, 300, { size: 224, maxSide: 100 }), { width: 100, height: 100 });
  assert.deepEqual(workingSize(300, 200, { size: 224, maxSide: 100 }), { width: 100, height: 67 });
});

test('workingSize: size null keeps native size, still capped by maxSide', () => {
  assert.deepEqual(workingSize(1800, 1200, { size: null, maxSide: null }), { width: 1800, height: 1200 });
  assert.deepEqual(workingSize(1, 1, { size: null, maxSide: null }), { width: 1, height: 1 });
  assert.deepEqual(workingSize(6000, 4000, { size: null, maxSide: 4096 }), { width: 4096, height: 2731 });
  assert.deepEqual(workingSize(4000, 6000, { size: null, maxSide: 4096 }), { width: 2731, height: 4096 });
  assert.deepEqual(workingSize(100000, 3, { size: null, maxSide: 4096 }), { width: 4096, height: 1 });
  assert.deepEqual(workingSize(5000, 5000, { size: null, maxSide: 4096 }), { width: 4096, height: 4096 });
});

test('workingSize: rejects non-positive or fractional dimensions', () => {
  assert.throws(() => workingSize(0, 10, { size: 224, maxSide: null }), RangeError);
  assert.throws(() => workingSize(10, -1, { size: 224, maxSide: null }), RangeError);
  assert.throws(() => workingSize(1.5, 10, { size: 224, maxSide: null }), RangeError);
  assert.throws(() => workingSize(Number.NaN, 10, { size: 224, maxSide: null }), RangeError);
});

// ---------------------------------------------------------------- options

test('DEFAULT_DECODE_OPTIONS and validateDecodeOptions defaults', () => {
  assert.deepEqual(validateDecodeOptions({}), {
    size: 224,
    maxSide: 4096,
    background: { r: 255, g: 255, b: 255 },
    maxInputPixels: 268402689,
    failOn: 'error',
  });
  assert.deepEqual(validateDecodeOptions({ size: null, maxSide: null }).size, null);
  assert.equal(validateDecodeOptions({ size: '384' as unknown as number }).size, 384);
  assert.deepEqual(validateDecodeOptions({ background: '#000' as never }).background, { r: 0, g: 0, b: 0 });
  assert.deepEqual(validateDecodeOptions({ background: '#102030' as never }).background, { r: 16, g: 32, b: 48 });
  assert.deepEqual(validateDecodeOptions({ background: '1, 2,3' as never }).background, { r: 1, g: 2, b: 3 });
  assert.equal(validateDecodeOptions({ failOn: 'none' }).failOn, 'none');
});

test('validateDecodeOptions: errors name the option and the value', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ size: 0 }, /Error: size must be a positive integer, got '0'$/],
    [{ size: -3 }, /Error: size .*got '-3'/],
    [{ size: 22.5 }, /Error: size .*got '22\.5'/],
    [{ size: 'abc' }, /Error: size .*got 'abc'/],
    [{ maxSide: 0 }, /Error: maxSide must be a positive integer, got '0'/],
    [{ maxInputPixels: null }, /Error: maxInputPixels must be a positive integer, got 'null'/],
    [{ maxInputPixels: -1 }, /Error: maxInputPixels .*got '-1'/],
    [{ failOn: 'sometimes' }, /Error: failOn must be one of none, truncated, error, warning, got 'sometimes'/],
    [{ background: { r: 256, g: 0, b: 0 } }, /Error: background .*got '\{"r":256,"g":0,"b":0\}'/],
    [{ background: 'purple' }, /Error: background .*got 'purple'/],
  ];
  for (const [opts, re] of cases) {
    assert.throws(() => validateDecodeOptions(opts as never), re, JSON.stringify(opts));
  }
});

test('decodeImage rejects invalid options with a plain Error before touching the file', async () => {
  await assert.rejects(decodeImage('/nonexistent.jpg', { size: 0 }), (err: unknown) => {
    assert.ok(!(err instanceof DecodeError));
    assert.match((err as Error).message, /^size must be/);
    return true;
  });
});

