import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import {
  DecodeError,
  type DecodeFailureReason,
  type DecodedImage,
  READ_WHOLE_MAX_BYTES,
  decodeImage,
} from '../../src/decode/decode.js';
import { missingShared, sharedPath } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';
import { assertRgbRow } from '../helpers/torture.js';

const TORTURE = sharedPath('images', 'torture');
const SKIP_MSG = missingShared('images', 'torture', 'MANIFEST.tsv');
const HAVE_TORTURE = SKIP_MSG === undefined;


const t = (name: string) => path.join(TORTURE, name);

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

function channelMeans(img: DecodedImage): [number, number, number] {
  const m: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < img.data.length; i++) m[i % 3]! += img.data[i]!;
  const n = img.width * img.height;
  return [m[0] / n, m[1] / n, m[2] / n];
}

async function expectFailure(p: Promise<unknown>, reason: DecodeFailureReason, label?: string): Promise<DecodeError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DecodeError, `expected DecodeError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    assert.ok(!/[\r\n]/.test(err.message), `message must be one line: ${JSON.stringify(err.message)}`);
    if (label !== undefined) {
      assert.equal(err.file, label);
      assert.ok(err.message.startsWith(`${label}: ${reason}: `), err.message);
    }
    return err;
  }
  assert.fail(`expected a '${reason}' failure, got a row`);
}

// ---------------------------------------------------------------- synthetic images (no shared data)

const rgbPng = (width: number, height: number, colour = { r: 200, g: 40, b: 90 }) =>
  sharp({ create: { width, height, channels: 3, background: colour } }).png().toBuffer();

test('synthetic: RGB PNG buffer resized to shorter side 224', async () => {
  const img = await decodeImage(await rgbPng(640, 480));
  assert.equal(img.format, 'png');
  assert.deepEqual([img.width, img.height, img.originalWidth, img.originalHeight], [299, 224, 640, 480]);
  assertRgbRow(img, 'synthetic');
  for (let i = 0; i < img.data.length; i += 3) {
    assert.deepEqual([img.data[i], img.data[i + 1], img.data[i + 2]], [200, 40, 90]);
  }
});

test('synthetic: 1x1 becomes 224x224, 1x5000 becomes 1x4096, size null keeps native size', async () => {
  const a = await decodeImage(await rgbPng(1, 1));
  assert.deepEqual([a.width, a.height], [224, 224]);
  const b = await decodeImage(await rgbPng(1, 5000));
  assert.deepEqual([b.width, b.height, b.data.length], [1, 4096, 4096 * 3]);
  const c = await decodeImage(await rgbPng(37, 21), { size: null });
  assert.deepEqual([c.width, c.height], [37, 21]);
  const d = await decodeImage(await rgbPng(300, 200), { size: 64, maxSide: 80 });
  assert.deepEqual([d.width, d.height], [80, 53]);
});

test('synthetic: transparent pixels flattened onto the background', async () => {
  const png = await sharp({ create: { width: 50, height: 30, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
    .png()
    .toBuffer();
  const white = await decodeImage(png);
  assert.ok(white.data.every((v) => v === 255));
  const bg = { r: 10, g: 20, b: 30 };
  const custom = await decodeImage(png, { background: bg });
  for (let i = 0; i < custom.data.length; i += 3) {
    assert.deepEqual([custom.data[i], custom.data[i + 1], custom.data[i + 2]], [10, 20, 30]);
  }
});

test('synthetic: EXIF orientation 6 swaps the reported and working size', async () => {
  const jpeg = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#3366cc' } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toBuffer();
  assert.equal((await sharp(jpeg).metadata()).orientation, 6);
  const img = await decodeImage(jpeg);
  assert.deepEqual([img.originalWidth, img.originalHeight, img.width, img.height], [200, 400, 224, 448]);
});

test('synthetic: CMYK JPEG and 16-bit PNG become 8-bit sRGB with 3 channels', async () => {
  const colour = { r: 30, g: 140, b: 220 };
  const cmyk = await sharp({ create: { width: 64, height: 48, channels: 3, background: colour } })
    .toColourspace('cmyk')
    .jpeg({ quality: 95 })
    .toBuffer();
  assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
  const a = await decodeImage(cmyk);
  const m = channelMeans(a);
  assert.ok(Math.abs(m[0] - colour.r) < 25 && Math.abs(m[1] - colour.g) < 25 && Math.abs(m[2] - colour.b) < 25, `${m}`);

  const png16 = await sharp({ create: { width: 64, height: 48, channels: 3, background: colour } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  assert.equal((await sharp(png16).metadata()).depth, 'ushort');
  const b = await decodeImage(png16);
  assert.deepEqual(channelMeans(b).map(Math.round), [30, 140, 220]);
});

test('synthetic: buffer failures are classified', async () => {
  await expectFailure(decodeImage(Buffer.alloc(0), {}, 'mem.png'), 'empty', 'mem.png');
  await expectFailure(decodeImage(Buffer.from('hello, not an image'), {}, 'x.jpg'), 'unsupported-format', 'x.jpg');
  // Large enough that the IDAT data is really cut (a solid colour compresses to a few bytes).
  const noisy = await sharp(Buffer.from(Array.from({ length: 300 * 200 * 3 }, (_, i) => (i * 7919) % 251)), {
    raw: { width: 300, height: 200, channels: 3 },
  })
    .png()
    .toBuffer();
  const noisyCut = noisy.subarray(0, Math.floor(noisy.length / 2));
  await expectFailure(decodeImage(noisyCut, {}, 'half.png'), 'truncated', 'half.png');
  // failOn 'none' trades the failure for a row with filler.
  const lenient = await decodeImage(noisyCut, { failOn: 'none' });
  assert.equal(lenient.data.length, lenient.width * lenient.height * 3);
  await expectFailure(decodeImage(await rgbPng(100, 100), { maxInputPixels: 9999 }), 'too-large');
  const ok = await decodeImage(await rgbPng(100, 100), { maxInputPixels: 10000 });
  assert.equal(ok.width, 224);
});

// zlib.crc32 needs Node >= 20.15; engines allows 20.9.
function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A PNG whose IHDR claims width x height, with one tiny IDAT (a few rows' worth at most). */
function pngClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(1024))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('synthetic: a 65536x65536 PNG header is refused from metadata alone, never decoded', async () => {
  const err = await expectFailure(decodeImage(pngClaiming(65536, 65536), {}, 'bomb.png'), 'too-large', 'bomb.png');
  assert.match(err.message, /65536x65536 = 4294967296 pixels exceeds the limit of 268402689/);
});

test('file-system failures: missing, directory, empty; message stays one line', async () => {
  const dir = tempDir('spp-decode-');
  try {
    await expectFailure(decodeImage(path.join(dir, 'nope.jpg')), 'missing');
    await expectFailure(decodeImage(path.join(dir, 'nope.jpg'), {}, 'photos/nope.jpg'), 'missing', 'photos/nope.jpg');
    await expectFailure(decodeImage(path.join(dir, 'a\nb.jpg')), 'missing');
    await expectFailure(decodeImage(dir), 'unreadable');
    await fsp.writeFile(path.join(dir, 'empty.jpg'), '');
    await expectFailure(decodeImage(path.join(dir, 'empty.jpg')), 'empty');
    await fsp.writeFile(path.join(dir, 'ok.png'), await rgbPng(20, 10));
    const img = await decodeImage(path.join(dir, 'ok.png'));
    assert.deepEqual([img.width, img.height], [448, 224]);
    if (process.getuid?.() !== 0) {
      await fsp.chmod(path.join(dir, 'ok.png'), 0o000);
      await expectFailure(decodeImage(path.join(dir, 'ok.png')), 'unreadable');
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a file is read once into memory, a larger one streams from disk: same pixels; errors worded for the file', async () => {
  const dir = tempDir('spp-decode-');
  try {
    const jpeg = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 10, g: 120, b: 240 } } })
      .composite([{ input: await rgbPng(100, 60, { r: 250, g: 250, b: 0 }), left: 30, top: 40 }]).jpeg().toBuffer();
    const small = path.join(dir, 'small.jpg');
    const large = path.join(dir, 'large.jpg');
    await fsp.writeFile(small, jpeg);
    // Bytes after the end-of-image marker are never decoded: the same picture in a file over the limit.
    await fsp.writeFile(large, Buffer.concat([jpeg, Buffer.alloc(READ_WHOLE_MAX_BYTES + 1 - jpeg.length)]));
    const [a, b, c] = [await decodeImage(small), await decodeImage(large), await decodeImage(jpeg)];
    assert.deepEqual([a.width, a.height, a.originalWidth, a.originalHeight], [336, 224, 300, 200]);
    assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)) && Buffer.from(a.data).equals(Buffer.from(c.data)), 'same pixels by any route');

    const text = path.join(dir, 'notes.jpg');
    await fsp.writeFile(text, 'not an image at all\n');
    const fromFile = await expectFailure(decodeImage(text), 'unsupported-format', text);
    assert.equal(fromFile.detail, 'Input file contains unsupported image format');
    const fromBytes = await expectFailure(decodeImage(Buffer.from('not an image at all\n'), {}, 'bytes'), 'unsupported-format', 'bytes');
    assert.equal(fromBytes.detail, 'Input buffer contains unsupported image format');
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- the torture set

// The per-file outcome of the whole torture set is checked once, through the pipeline: test/integration/torture.test.ts.

test('torture: EXIF orientations 0-8 all decode upright to the same size and pixels', { skip: HAVE_TORTURE ? false : SKIP_MSG }, async () => {
  const ref = await decodeImage(t('jpeg-exif-orientation-Landscape_1.jpg'));
  assert.deepEqual([ref.originalWidth, ref.originalHeight, ref.width, ref.height], [1800, 1200, 336, 224]);
  for (let i = 0; i <= 8; i++) {
    const img = await decodeImage(t(`jpeg-exif-orientation-Landscape_${i}.jpg`));
    assert.deepEqual([img.originalWidth, img.originalHeight, img.width, img.height], [1800, 1200, 336, 224], `orientation ${i}`);
    // Re-encoding noise only (observed <= 1.6); a wrong rotation/flip gives tens.
    assert.ok(meanAbsDiff(ref.data, img.data) < 4, `orientation ${i}: mean abs diff ${meanAbsDiff(ref.data, img.data)}`);
  }
  const tiny = await decodeImage(t('jpeg-2x1-exif-orientation-8.jpg'));
  assert.deepEqual([tiny.originalWidth, tiny.originalHeight, tiny.width, tiny.height], [1, 2, 224, 448]);
  const prog = await decodeImage(t('jpeg-progressive-exif-orientation-6.jpg'));
  assert.deepEqual([prog.originalWidth, prog.originalHeight], [231, 308]);
});

test('torture: CMYK decodes like sharp’s own sRGB conversion, not inverted', { skip: HAVE_TORTURE ? false : SKIP_MSG }, async () => {
  const mean = (a: Uint8Array) => a.reduce((s, v) => s + v, 0) / a.length;
  for (const f of ['jpeg-cmyk-with-icc-profile.jpg', 'jpeg-cmyk-no-profile.jpg', 'jpeg-cmyk-adobe-small.jpg', 'tiff-cmyk-fogra-1000x1000.tif', 'tiff-cmyk-16bit.tif', 'tiff-cmyk-jpeg-compressed.tif']) {
    const img = await decodeImage(t(f));
    const ref = await sharp(t(f)).toColourspace('srgb').resize(img.width, img.height, { fit: 'fill' }).raw().toBuffer();
    assert.ok(meanAbsDiff(img.data, ref) < 3, `${f}: ${meanAbsDiff(img.data, ref)}`);
    assert.ok(Math.abs(mean(img.data) - mean(ref)) < 0.1 * mean(ref) + 1, f);
  }
  // Same photo with and without a profile: close in brightness (inversion would flip it).
  const a = channelMeans(await decodeImage(t('jpeg-cmyk-with-icc-profile.jpg')));
  const b = channelMeans(await decodeImage(t('jpeg-cmyk-no-profile.jpg')));
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(a[c]! - b[c]!) < 25, `channel ${c}: ${a[c]} vs ${b[c]}`);
  // The FOGRA TIFF is a red square, the Adobe JPEG red text on black: red must dominate.
  const red = channelMeans(await decodeImage(t('tiff-cmyk-fogra-1000x1000.tif')));
  assert.ok(red[0] > 150 && red[1] < 80 && red[2] < 80, `fogra ${red}`);
  const adobe = channelMeans(await decodeImage(t('jpeg-cmyk-adobe-small.jpg')));
  assert.ok(adobe[0] > 2 * adobe[1] && adobe[0] > 2 * adobe[2], `adobe ${adobe}`);
});

test('torture: fully transparent PNG becomes pure background', { skip: HAVE_TORTURE ? false : SKIP_MSG }, async () => {
  const white = await decodeImage(t('png-fully-transparent.png'));
  assert.ok(white.data.every((v) => v === 255));
  const grey = await decodeImage(t('png-fully-transparent.png'), { background: { r: 7, g: 77, b: 177 } });
  for (let i = 0; i < grey.data.length; i += 3) {
    assert.deepEqual([grey.data[i], grey.data[i + 1], grey.data[i + 2]], [7, 77, 177]);
  }
});

test('torture: 16-bit inputs are scaled to 8 bits, not clipped', { skip: HAVE_TORTURE ? false : SKIP_MSG }, async () => {
  for (const f of ['png-16bit-rgb-flag.png', 'png-16bit-rgb-photo.png', 'png-16bit-rgba-pngsuite-tbgn2c16.png', 'tiff-16bit-rgb-photoshop.tiff', 'tiff-16bit-rgb.tiff', 'tiff-cmyk-16bit.tif']) {
    const img = await decodeImage(t(f));
    const distinct = new Set(img.data).size;
    const max = img.data.reduce((m, v) => Math.max(m, v), 0);
    assert.ok(distinct >= 20 && max >= 100, `${f}: ${distinct} distinct values, max ${max}`);
  }
});

test('torture: grayscale and bilevel inputs give three equal channels', { skip: HAVE_TORTURE ? false : SKIP_MSG }, async () => {
  for (const f of ['jpeg-grayscale-peacock.jpeg', 'jpeg-grayscale-with-icc-concert.jpg', 'png-thin-256x10-gradient.png', 'png-1bit-bilevel-2809x2074.png', 'png-8bit-grey-alpha.png', 'tiff-bilevel-g3-fax-2464x3248.tif', 'tiff-thin-256x4-4bit.tif', 'jpeg-1x1-grayscale.jpg']) {
    const img = await decodeImage(t(f));
    for (let i = 0; i < img.data.length; i += 3) {
      if (img.data[i] !== img.data[i + 1] || img.data[i] !== img.data[i + 2]) assert.fail(`${f}: pixel ${i / 3} not grey`);
    }
    if (!f.includes('1x1')) assert.ok(new Set(img.data).size > 50, `${f}: values spread`);
  }
});

test('torture: lenient failOn none turns truncated files into rows; limit raised decodes the huge JPEG', { skip: HAVE_TORTURE ? false : SKIP_MSG }, async () => {
  for (const f of ['jpeg-truncated-baseline-2725x2225.jpg', 'png-truncated.png', 'gif-truncated.gif']) {
    const img = await decodeImage(t(f), { failOn: 'none' });
    assertRgbRow(img, f);
  }
  const huge = await decodeImage(t('jpeg-huge-20000x14000-1MB.jpg'), { maxInputPixels: 280000000 });
  assert.deepEqual([huge.originalWidth, huge.originalHeight, huge.width, huge.height], [20000, 14000, 320, 224]);
});

test('JPEG headers read in JS agree with libvips: sharp-made orientations 1-8, and every shared torture JPEG and photo it vouches for', async () => {
  const { readJpegHeader } = await import('../../src/decode/jpeg-header.js');
  const base = sharp({ create: { width: 37, height: 23, channels: 3, background: { r: 9, g: 99, b: 199 } } });
  const made: Buffer[] = [];
  for (let o = 1; o <= 8; o++) made.push(await base.clone().jpeg().withMetadata({ orientation: o }).toBuffer());
  made.push(await base.clone().jpeg({ progressive: true }).toBuffer());
  // The awkward files and the photos (the 500 labelled photos are plain baseline JPEGs like the photos).
  const shared = HAVE_TORTURE ? [...await listJpegs(TORTURE), ...await listJpegs(sharedPath('images', 'photos'))] : [];
  let vouched = 0;
  for (const bytes of [...made, ...shared]) {
    const js = readJpegHeader(bytes);
    if (!js) continue;
    vouched++;
    const m = await sharp(bytes, { limitInputPixels: false }).metadata().catch(() => undefined);
    assert.ok(m, 'a header libvips cannot read is not vouched for');
    assert.deepEqual(js, { width: m.width, height: m.height, orientation: m.orientation ?? 1 });
  }
  assert.ok(vouched >= made.length, `the sharp-made JPEGs are read in JS (${vouched})`);
  if (HAVE_TORTURE) assert.ok(vouched >= shared.length - 10, `most shared JPEGs are read in JS (${vouched} of ${shared.length})`);
});

test('an EXIF-rotated JPEG decodes to the same pixels from its path and its bytes, upright', async () => {
  const dir = tempDir('spp-jpeg-hdr-');
  const upright = await sharp({ create: { width: 60, height: 40, channels: 3, background: { r: 200, g: 10, b: 10 } } }).jpeg().toBuffer();
  // Stored 40x60 with orientation 6: shown 60x40 after rotation.
  const rotated = await sharp(upright).rotate(-90).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  const file = path.join(dir, 'rot.jpg');
  await fsp.writeFile(file, rotated);
  const a = await decodeImage(file);
  const b = await decodeImage(rotated);
  assert.deepEqual([a.originalWidth, a.originalHeight, a.width, a.height], [60, 40, 336, 224]);
  assert.deepEqual([b.width, b.height], [a.width, a.height]);
  assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)));
});

async function listJpegs(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath ?? (e as { path: string }).path, e.name);
    if ((await fsp.stat(p)).size > READ_WHOLE_MAX_BYTES) continue;
    const bytes = await fsp.readFile(p);
    if (bytes[0] === 0xff && bytes[1] === 0xd8) out.push(bytes);
  }
  return out;
}
