/** decodeFile: a Buffer is a path (a name that is not UTF-8), read whatever its size; decodeImage(Buffer) still means image bytes. */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { DEFAULT_DECODE_OPTIONS, READ_WHOLE_MAX_BYTES, decodeFile, decodeImage } from '../../src/decode/decode.js';
import { fixture } from '../helpers/shared.js';
import { syntheticPixels } from '../helpers/pixels.js';
import { tempDir } from '../helpers/tmp.js';

const latin1Name = (dir: string, name: string) => Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(name, 'latin1')]);

test('decodeFile opens a file by the bytes of its name, small or over READ_WHOLE_MAX_BYTES, as the same file by a UTF-8 name', async () => {
  const dir = tempDir('spp-decode-names-');
  const small = fixture('images', 'noise-100x70.jpg');
  // Noise PNG: barely compresses, so it is over the read-whole size.
  const { data, width, height } = syntheticPixels(1900, 1700, 7);
  const big = join(dir, 'big.png');
  await sharp(Buffer.from(data), { raw: { width, height, channels: 3 } }).png({ compressionLevel: 0 }).toFile(big);
  assert.ok(readFileSync(big).length > READ_WHOLE_MAX_BYTES);
  for (const [src, name] of [[small, 'caf\xe9.jpg'], [big, 'b\xff\xfe.png']] as const) {
    const bytesName = latin1Name(dir, name);
    copyFileSync(src, bytesName);
    const byBytes = await decodeFile(bytesName, DEFAULT_DECODE_OPTIONS, 'label');
    const byText = await decodeFile(src, DEFAULT_DECODE_OPTIONS, src);
    assert.deepEqual([byBytes.width, byBytes.height, byBytes.originalWidth], [byText.width, byText.height, byText.originalWidth]);
    assert.ok(Buffer.from(byBytes.data).equals(Buffer.from(byText.data)), name);
  }
  await assert.rejects(decodeFile(latin1Name(dir, 'gone\xe9.jpg'), DEFAULT_DECODE_OPTIONS, 'gone\\xe9.jpg'), /^DecodeError: gone\\xe9\.jpg: missing/);
  // A Buffer given to decodeImage is image bytes, as before.
  assert.equal((await decodeImage(readFileSync(small))).originalWidth, 100);
});
