import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEFAULT_DECODE_OPTIONS, workingSize, type DecodeFailureReason, type DecodedImage } from '../../src/decode/decode.js';
import { sharedPath } from './shared.js';

export type Outcome = 'row' | DecodeFailureReason;

/**
 * Expected outcome with default options for every torture file, reasoned from MANIFEST.tsv's
 * description and sharp's recorded behaviour (failOn defaults to 'error' here, not 'warning').
 */
export const TORTURE_EXPECTED: Record<string, Outcome> = {
  'avif-alpha.avif': 'row',
  'avif-basic-800x533.avif': 'row',
  'avif-orientation-6-3024x4032.avif': 'row',
  'avif-pitm-box.avif': 'row', // first of 5 items decodes; only pages:-1 fails
  'avif-sequence-star.avifs': 'unsupported-format', // AVIF sequence brand: libheif here says unsupported
  'gif-2x1-grey-plus-alpha.gif': 'row',
  'gif-animated-30-frames-alpha.gif': 'row', // first frame
  'gif-animated-muybridge-15-frames.gif': 'row',
  'gif-no-frames.gif': 'corrupt', // valid header, no image at all: nothing to call "truncated"
  'gif-static-photo-800x533.gif': 'row',
  'gif-truncated.gif': 'truncated', // "Unexpected end of GIF source data"
  // Zero width, and the file also stops right after the image descriptor (no LZW data, no trailer):
  // giflib reports the unexpected end, so it classes as truncated.
  'gif-zero-width.gif': 'truncated',
  'heic-hevc-example-1280x854.heic': 'unsupported-format', // prebuilt libheif has no HEVC decoder
  'jpeg-1x1-grayscale.jpg': 'row',
  'jpeg-2x1-exif-orientation-8.jpg': 'row',
  'jpeg-arithmetic-coded.jpg': 'row',
  'jpeg-cmyk-adobe-small.jpg': 'row',
  'jpeg-cmyk-no-profile.jpg': 'row',
  'jpeg-cmyk-with-icc-profile.jpg': 'row',
  // APP1 claims 9544 bytes, file has 1024: no frame header ever read ("contains no image").
  'jpeg-corrupt-header.jpg': 'corrupt',
  'jpeg-exif-orientation-Landscape_0.jpg': 'row',
  'jpeg-exif-orientation-Landscape_1.jpg': 'row',
  'jpeg-exif-orientation-Landscape_2.jpg': 'row',
  'jpeg-exif-orientation-Landscape_3.jpg': 'row',
  'jpeg-exif-orientation-Landscape_4.jpg': 'row',
  'jpeg-exif-orientation-Landscape_5.jpg': 'row',
  'jpeg-exif-orientation-Landscape_6.jpg': 'row',
  'jpeg-exif-orientation-Landscape_7.jpg': 'row',
  'jpeg-exif-orientation-Landscape_8.jpg': 'row',
  'jpeg-grayscale-peacock.jpeg': 'row',
  'jpeg-grayscale-with-icc-concert.jpg': 'row',
  'jpeg-huge-20000x14000-1MB.jpg': 'too-large', // 280 Mpx > 268402689
  'jpeg-junk-before-soi.jpg': 'row', // only a libjpeg warning: decodes under failOn 'error'
  'jpeg-lossless-sof3.jpg': 'row',
  'jpeg-mpo-multi-picture.mpo': 'row',
  'jpeg-progressive-big-icc-profile.jpg': 'row',
  'jpeg-progressive-cat-320x240.jpg': 'row',
  'jpeg-progressive-exif-orientation-6.jpg': 'row',
  'jpeg-progressive-peacock-100x75.jpeg': 'row',
  'jpeg-progressive-photo-650x470.jpg': 'row',
  'jpeg-truncated-baseline-2725x2225.jpg': 'truncated',
  'jpeg-truncated-progressive.jpg': 'truncated',
  // The primary image's scan data is cut short: a failOn 'none' decode is uniform grey 128.
  'jpeg-ultrahdr-gainmap.jpg': 'truncated',
  'jpeg-weird-chroma-subsampling.jpeg': 'row',
  'png-16bit-rgb-flag.png': 'row',
  'png-16bit-rgb-photo.png': 'row',
  'png-16bit-rgba-pngsuite-tbgn2c16.png': 'row',
  'png-1bit-bilevel-2809x2074.png': 'row',
  'png-1x1-palette-tRNS.png': 'row',
  'png-1x1-prophoto-icc.png': 'row',
  'png-8bit-grey-alpha.png': 'row',
  'png-apng-animated-ball.png': 'row',
  'png-broken-header.png': 'corrupt', // garbage right after the signature
  'png-display-p3-icc.png': 'row',
  'png-fully-transparent.png': 'row',
  'png-interlaced-adam7-pngsuite-basi2c08.png': 'row',
  'png-palette-2bit-with-alpha-flag.png': 'row',
  'png-palette-no-alpha-swiss.png': 'row',
  'png-palette-tRNS-pngsuite-tbbn3p08.png': 'row',
  'png-rgba-alpha-blackbug-2048x1536.png': 'row',
  'png-thin-256x10-gradient.png': 'row',
  'png-truncated-image-data.png': 'truncated',
  'png-truncated.png': 'truncated',
  'png-wide-750x30-text.png': 'row',
  'svg-primitive-hibiscus.svg': 'row',
  'svg-simple-check.svg': 'row',
  'svg-tiny-8x8-viewbox.svg': 'row',
  'svg-with-embedded-images.svg': 'row',
  'svgz-gzipped-logo.svgz': 'row',
  'text-file-with-jpg-extension.jpg': 'unsupported-format',
  'tiff-16bit-rgb-photoshop.tiff': 'row',
  'tiff-16bit-rgb.tiff': 'row',
  'tiff-bilevel-g3-fax-2464x3248.tif': 'row',
  'tiff-cmyk-16bit.tif': 'row',
  'tiff-cmyk-1x1.tif': 'row',
  'tiff-cmyk-fogra-1000x1000.tif': 'row',
  'tiff-cmyk-jpeg-compressed.tif': 'row',
  'tiff-multipage-3-pages.tiff': 'row', // first page
  'tiff-multipage-ome-15-pages.ome.tif': 'row',
  'tiff-old-style-jpeg.tif': 'unsupported-format', // OJPEG compression not built into this libtiff
  'tiff-thin-256x4-4bit.tif': 'row',
  'unsupported-bmp-small.bmp': 'unsupported-format',
  'unsupported-ico-favicon.ico': 'unsupported-format',
  'unsupported-jpeg2000-relax.jp2': 'unsupported-format',
  'unsupported-ppm-rgba.ppm': 'unsupported-format',
  'unsupported-tga.tga': 'unsupported-format',
  'webp-animated-6-frames.webp': 'row',
  'webp-animated-9-frames.webp': 'row',
  'webp-exif-orientation-6.webp': 'row',
  'webp-lossless-hibiscus.webp': 'row',
  'webp-lossy-alpha.webp': 'row',
  'webp-lossy-hibiscus.webp': 'row',
  'zero-byte-file.bytes': 'empty',
  'zero-byte-file.jpg': 'empty',
};

export interface TortureManifestRow {
  name: string;
  description: string;
  meta?: { width: number; height: number; orientation?: number };
}

/** ../shared/images/torture/MANIFEST.tsv: each file, what it is, and what sharp 0.35.5 reported for it. */
export function readTortureManifest(): TortureManifestRow[] {
  const lines = readFileSync(sharedPath('images', 'torture', 'MANIFEST.tsv'), 'utf8').split('\n').filter(Boolean);
  return lines.slice(1).map((line) => {
    const cols = line.split('\t');
    const result = JSON.parse(cols[6]!) as { meta?: TortureManifestRow['meta'] };
    return { name: cols[0]!, description: cols[4]!, meta: result.meta };
  });
}

/** A decoded row as the default size policy must give it: 3 channels, the working size of its original size. */
export function assertRgbRow(img: Pick<DecodedImage, 'channels' | 'width' | 'height' | 'originalWidth' | 'originalHeight'> & { data: { length: number } }, label: string): void {
  assert.equal(img.channels, 3, label);
  assert.equal(img.data.length, img.width * img.height * 3, `${label}: data length`);
  assert.deepEqual(
    { width: img.width, height: img.height },
    workingSize(img.originalWidth, img.originalHeight, DEFAULT_DECODE_OPTIONS),
    `${label}: working size`,
  );
  // Shorter side 224, unless the 4096 longer-side cap had to shrink it (very thin images).
  const short = Math.min(img.width, img.height);
  const long = Math.max(img.width, img.height);
  assert.ok(short === 224 || (long === 4096 && short < 224), `${label}: ${img.width}x${img.height}`);
}
