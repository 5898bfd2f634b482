/** readUpdateBase over an .npy output: kept rows come back as the file holds them, whatever the read-ahead block. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readUpdateBase, updateTuning, type RunHeader } from '../../src/output/index.js';
import { runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';
import { imageFolder, manifestOf } from '../helpers/update.js';

test('an .npy base hands back each kept row\'s bytes, in order, out of order and across read-ahead blocks', async () => {
  const dir = tempDir('spp-update-base-');
  const images = await imageFolder(dir, [1, 2, 3, 4, 5, 6, 7]);
  const out = join(dir, 'feats.npy');
  const r = await runCli([images, '-o', out, '--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', join(dir, 'cache')]);
  assert.equal(r.code, 0, r.stderr);
  const { type: _type, ...header } = JSON.parse(readFileSync(manifestOf(out), 'utf8').split('\n')[0]!) as RunHeader & { type: string };
  const npy = readFileSync(out);
  const rowBytes = (npy.length - 128) / 7;
  const saved = updateTuning.readAheadBytes;
  updateTuning.readAheadBytes = 3 * rowBytes; // blocks of rows 0-2, 3-5, 6
  try {
    const base = await readUpdateBase(out, out, 'npy', header as RunHeader);
    try {
      const byRow = [...base.records.values()].sort((a, b) => a.row - b.row);
      assert.equal(byRow.length, 7);
      for (const order of [[0, 1, 2, 3, 4, 5, 6], [5, 1, 6, 6, 0, 3, 2]]) {
        for (const row of order) {
          const want = npy.subarray(128 + row * rowBytes, 128 + (row + 1) * rowBytes);
          assert.deepEqual(Buffer.from(await base.rowBytes(byRow[row]!)), want, `row ${row}`);
        }
      }
    } finally {
      await base.close();
    }
  } finally {
    updateTuning.readAheadBytes = saved;
  }
});
