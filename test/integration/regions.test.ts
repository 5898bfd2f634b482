/**
 * extractor.extractRegions: one forward pass, boxes in the coordinates of the image as displayed.
 * Compared with the extractor's own whole-image descriptors and, for EXIF, with the same photo
 * rotated upright beforehand (an independent path: sharp rotates and re-encodes losslessly).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { createExtractor, type Extractor } from '../../src/pipeline/extractor.js';
import { fixture, missingShared, sharedPath } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

let ex: Extractor;
const image = fixture('images', 'red-64x48.png');

before(async () => {
  ex = await createExtractor({ model: fixture('tiny-layers'), threads: 1, cacheDir: tempDir('spp-regions-cache-') });
});
after(() => ex.dispose());

test('extractRegions: a box covering the image (or more) is the image descriptor, bit for bit; one descriptor per box', async () => {
  const whole = await ex.extract(image);
  const [a, b, c] = await ex.extractRegions(image, [[0, 0, 64, 48], [-10, -10, 100, 100], [8, 4, 40, 30]]);
  assert.deepEqual(a, whole);
  assert.deepEqual(b, whole);
  assert.equal(c.length, whole.length);
  assert.notDeepEqual(c, whole);
  assert.deepEqual(await ex.extractRegions(image, []), []);
});

test('extractRegions: a bad box throws a RangeError naming it; a non-array is an invalid parameter', async () => {
  await assert.rejects(ex.extractRegions(image, [[0, 0, 10, 10], [5, 5, 5, 9]]), (err: Error) => err instanceof RangeError && /^boxes\[1\]: box \[5, 5, 5, 9\] is empty/.test(err.message));
  await assert.rejects(ex.extractRegions(image, [[30, 0, 10, 10]]), /boxes\[0\]: box \[30, 0, 10, 10\] is inverted/);
  await assert.rejects(ex.extractRegions(image, 'all' as never), /boxes must be an array of \[x0, y0, x1, y1\] boxes/);
});

test('pool gem: p = 1 is the average pooling; a large p approaches max', async () => {
  const opts = { model: fixture('tiny-layers'), threads: 1, worker: false, cacheDir: tempDir('spp-gem-cache-') };
  const [avg, gem1, max, gem60] = await Promise.all([
    createExtractor({ ...opts, pool: 'avg' }), createExtractor({ ...opts, pool: 'gem', gemP: 1 }),
    createExtractor({ ...opts, pool: 'max' }), createExtractor({ ...opts, pool: 'gem', gemP: 60 }),
  ]);
  try {
    const [a, g1, m, g60] = await Promise.all([avg, gem1, max, gem60].map((e) => e.extract(image)));
    assert.equal(gem1.info.gemP, 1);
    for (let i = 0; i < a.length; i++) {
      if (a[i] >= 1e-6) assert.ok(Math.abs(g1[i] - a[i]) <= 1e-6 * Math.max(1, a[i]), `p=1 [${i}]: ${g1[i]} vs ${a[i]}`);
      if (m[i] > 1e-3) assert.ok(g60[i] <= m[i] * (1 + 1e-6) && g60[i] >= m[i] * 0.8, `p=60 [${i}]: ${g60[i]} vs max ${m[i]}`);
    }
  } finally {
    await Promise.all([avg, gem1, max, gem60].map((e) => e.dispose()));
  }
});

test('EXIF: boxes on an orientation-6 photo address the displayed image, as on the same photo rotated upright beforehand', async (t) => {
  const why = missingShared('images', 'torture', 'jpeg-exif-orientation-Landscape_6.jpg');
  if (why) return t.skip(why);
  const rotated = sharedPath('images', 'torture', 'jpeg-exif-orientation-Landscape_6.jpg');
  const upright = join(tempDir('spp-exif-'), 'upright.png');
  const info = await sharp(rotated).rotate().png().toFile(upright);
  assert.deepEqual([info.width, info.height], [1800, 1200], 'displayed landscape, stored portrait');
  // Native size: no resize, so both decode to the very same pixels and the comparison is exact.
  const native = await createExtractor({ model: fixture('tiny-layers'), threads: 1, decode: { size: null }, cacheDir: tempDir('spp-exif-cache-') });
  try {
    const boxes: [number, number, number, number][] = [[100, 50, 900, 700], [1200, 300, 1800, 1200], [0, 0, 1800, 1200]];
    const fromExif = await native.extractRegions(rotated, boxes);
    const fromUpright = await native.extractRegions(upright, boxes);
    boxes.forEach((b, k) => assert.deepEqual(fromExif[k], fromUpright[k], `box ${b}`));
    // The stored (unrotated) orientation would put the first box elsewhere: the check can fail.
    const stored = await native.extractRegions(upright, [[50, 100, 700, 900]]);
    assert.notDeepEqual(stored[0], fromExif[0]);
  } finally {
    await native.dispose();
  }
});
