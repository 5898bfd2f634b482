/**
 * Options as the library and the CLI's text see them, without running anything: errors name the
 * property (library) and are checked where they enter; defaults are the documented ones (README);
 * plurals and the progress line. The CLI's flag-named errors: test/e2e/cli-usage.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { progressText, plural } from '../../src/cli/progress.js';
import { resolveExtractorOptions } from '../../src/core/resolve.js';
import { validateDecodeOptions } from '../../src/decode/decode.js';
import { createExtractor } from '../../src/pipeline/extractor.js';

test('library errors name the property; each checked once where it enters (before any model loads)', async () => {
  await assert.rejects(createExtractor({ levels: [0] }), /^InvalidParameterError: levels must be a non-empty array of positive integers, got '0'$/m);
  await assert.rejects(createExtractor({ pool: 'median' as never }), /Error: pool must be one of max, avg, gem, got 'median'/);
  await assert.rejects(createExtractor({ pool: 'gem', gemP: 0 }), /Error: gemP must be a finite number > 0, got '0'/);
  await assert.rejects(createExtractor({ decode: { size: 0 } }), /Error: decode\.size must be a positive integer, got '0'/);
  await assert.rejects(createExtractor({ decode: { background: 'teal' as never } }), /Error: decode\.background must be/);
  await assert.rejects(createExtractor({ inputRange: [1, 0] }), /Error: inputRange must be two numbers \[low, high\] with low < high, got '1,0'/);
  assert.throws(() => validateDecodeOptions({ maxSide: 0 }, 'decode.'), /Error: decode\.maxSide must be/);
});

test('resolveExtractorOptions: the README\'s defaults filled in; given values kept; errors name the property', () => {
  const d = resolveExtractorOptions({});
  assert.deepEqual([d.levels, d.pool, d.normalize, d.engine, d.backend], [[1, 2, 4], 'max', 'none', 'auto', 'auto']);
  assert.deepEqual(d.decode, { size: 224, maxSide: 4096, background: { r: 255, g: 255, b: 255 }, maxInputPixels: 268402689, failOn: 'error' });
  assert.equal(d.model, undefined, 'no model: the registry default');
  const given = resolveExtractorOptions({ levels: [6, 3, 2, 1], pool: 'avg', normalize: 'sqrt', decode: { size: null, failOn: 'none' } });
  assert.deepEqual([given.levels, given.pool, given.normalize, given.decode.size, given.decode.maxSide, given.decode.failOn], [[6, 3, 2, 1], 'avg', 'sqrt', null, 4096, 'none']);
  assert.throws(() => resolveExtractorOptions({ normalize: 'l3' }), /normalize must be one of none, l2, sqrt, got 'l3'/);
  assert.throws(() => resolveExtractorOptions({ decode: 5 }), /decode must be an object/);
  assert.throws(() => resolveExtractorOptions('x'), /options must be an object/);
});

test('plurals and img/s: "1 row", images done per second not counting failures', () => {
  assert.equal(plural(1, 'row'), '1 row');
  assert.equal(plural(0, 'row'), '0 rows');
  assert.equal(progressText({ done: 3, total: 4, imagesDone: 1, rows: 1, failures: 2, elapsedMs: 2000 }), '3/4 images · 0.5 img/s · ETA 0:01 · 2 failed');
  assert.match(progressText({ done: 0, total: 1, imagesDone: 0, rows: 0, failures: 0, elapsedMs: 0 }), /^0\/1 image · 0\.0 img\/s · ETA \?$/);
});
