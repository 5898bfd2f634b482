/** contentIdentity: the SHA-256 of a file's bytes, whatever its size against the read piece (1 MiB). */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentIdentity } from '../../src/decode/decode.js';
import { tempDir } from '../helpers/tmp.js';

test('contentIdentity is the SHA-256 of every byte: small files (one read), 1 MiB ± 1 and several MiB', async () => {
  const dir = tempDir('spp-identity-');
  for (const size of [1, 30_000, 2 ** 20 - 1, 2 ** 20, 2 ** 20 + 1, 3 * 2 ** 20 + 7]) {
    const bytes = randomBytes(size);
    const file = join(dir, `f${size}`);
    writeFileSync(file, bytes);
    assert.equal(await contentIdentity(file), createHash('sha256').update(bytes).digest('hex'), `${size} bytes`);
  }
  writeFileSync(join(dir, 'empty'), '');
  assert.equal(await contentIdentity(join(dir, 'empty')), undefined, 'an empty file has no identity (it fails to decode)');
  assert.equal(await contentIdentity(join(dir, 'missing')), undefined);
});
