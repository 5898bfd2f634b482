import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readJpegHeader } from '../../src/decode/jpeg-header.js';

const be16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const le16 = (n: number) => [n & 0xff, (n >> 8) & 0xff];
const segment = (marker: number, body: number[]) => [0xff, marker, ...be16(body.length + 2), ...body];
const sof = (width: number, height: number, marker = 0xc0) => segment(marker, [8, ...be16(height), ...be16(width), 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
const sos = [...segment(0xda, [3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0]), 0x12, 0x34, 0xff, 0xd9];

/** An APP1 EXIF block whose IFD0 holds the given entries ([tag, type, count, value]). */
function exif(entries: [number, number, number, number][], little = true): number[] {
  const u16 = little ? le16 : be16;
  const u32 = (n: number) => (little ? [...le16(n & 0xffff), ...le16(n >>> 16)] : [...be16(n >>> 16), ...be16(n & 0xffff)]);
  const tiff = [...(little ? [0x49, 0x49] : [0x4d, 0x4d]), ...u16(42), ...u32(8), ...u16(entries.length)];
  for (const [tag, type, count, value] of entries) tiff.push(...u16(tag), ...u16(type), ...u32(count), ...u16(value), 0, 0);
  tiff.push(...u32(0));
  return segment(0xe1, [0x45, 0x78, 0x69, 0x66, 0, 0, ...tiff]);
}

const jpeg = (...parts: number[][]) => Uint8Array.from([0xff, 0xd8, ...parts.flat(), ...sos]);
const app0 = segment(0xe0, [0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);

describe('readJpegHeader (pure): dimensions and EXIF orientation, or undefined for anything it does not vouch for', () => {
  it('reads SOF dimensions; no EXIF is orientation 1', () => {
    assert.deepEqual(readJpegHeader(jpeg(app0, sof(640, 480))), { width: 640, height: 480, orientation: 1 });
    assert.deepEqual(readJpegHeader(jpeg(sof(1, 65535, 0xc2))), { width: 1, height: 65535, orientation: 1 }, 'progressive');
  });

  it('reads IFD0 orientation in either byte order, before or after the SOF', () => {
    for (let o = 1; o <= 8; o++) {
      assert.deepEqual(readJpegHeader(jpeg(exif([[0x010f, 2, 4, 0], [0x0112, 3, 1, o]]), sof(300, 200))), { width: 300, height: 200, orientation: o });
      assert.deepEqual(readJpegHeader(jpeg(sof(300, 200), exif([[0x0112, 3, 1, o]], false))), { width: 300, height: 200, orientation: o });
    }
  });

  it('skips fill bytes and standalone markers; DHT, JPG and DAC are not frames', () => {
    const dht = segment(0xc4, [0, ...new Array(16).fill(0)]);
    assert.deepEqual(readJpegHeader(jpeg(dht, [0xff, 0xff], segment(0xcc, [0, 0]), sof(10, 20))), { width: 10, height: 20, orientation: 1 });
  });

  it('undefined: not a JPEG, no SOF before SOS, two SOFs, a DNL height, truncated, two EXIF blocks, odd orientations', () => {
    const cases: [string, Uint8Array][] = [
      ['PNG signature', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
      ['no SOF', jpeg(app0)],
      ['two SOFs', jpeg(sof(10, 10), sof(20, 20))],
      ['height from DNL', jpeg(sof(10, 0))],
      ['zero width', jpeg(sof(0, 10))],
      ['segment past the end', Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0x40, 0x00, 1, 2, 3])],
      ['ends before SOS', Uint8Array.from([0xff, 0xd8, ...sof(10, 10)])],
      ['garbage between segments', jpeg(app0, [0x00], sof(10, 10))],
      ['two EXIF blocks', jpeg(exif([[0x0112, 3, 1, 1]]), exif([[0x0112, 3, 1, 6]]), sof(10, 20))],
      ['EXIF without orientation in IFD0', jpeg(exif([[0x010f, 2, 4, 0]]), sof(10, 20))],
      ['orientation 0', jpeg(exif([[0x0112, 3, 1, 0]]), sof(10, 20))],
      ['orientation 9', jpeg(exif([[0x0112, 3, 1, 9]]), sof(10, 20))],
      ['orientation as LONG', jpeg(exif([[0x0112, 4, 1, 6]]), sof(10, 20))],
      ['IFD0 past the block', jpeg(segment(0xe1, [0x45, 0x78, 0x69, 0x66, 0, 0, 0x49, 0x49, 42, 0, 0xff, 0, 0, 0]), sof(10, 20))],
      ['SOI again', jpeg([0xff, 0xd8], sof(10, 10))],
      ['empty', new Uint8Array(0)],
    ];
    for (const [name, bytes] of cases) assert.equal(readJpegHeader(bytes), undefined, name);
  });

  it('never throws or spins on random or cut bytes', () => {
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const good = jpeg(app0, exif([[0x0112, 3, 1, 6]]), sof(300, 200));
    for (let cut = 0; cut <= good.length; cut++) readJpegHeader(good.subarray(0, cut));
    for (let n = 0; n < 2000; n++) {
      const bytes = Uint8Array.from(good);
      for (let k = 0; k < 4; k++) bytes[2 + (next() % (bytes.length - 2))] = next();
      const h = readJpegHeader(bytes);
      if (h) assert.ok(h.width > 0 && h.height > 0 && h.orientation >= 1 && h.orientation <= 8);
    }
  });
});
