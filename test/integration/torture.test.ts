/**
 * The torture set (../shared/images/torture: 94 awkward real-world files), run once: decoded,
 * through a real MobileNet, into a real .npy writer, the pipeline's way (runExtraction). From that
 * one run: the decode stage's promise for every file (the expected row or classified failure, an
 * upright RGB image at the working size, the oriented original size MANIFEST.tsv reports, one-line
 * messages naming the file) and the pipeline's (one record per input in order, the .npy holds
 * exactly the rows). The CLI's exit code and failure lines on such files: test/e2e/cli.test.ts
 * (a subset, one file per failure reason).
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DecodedImage } from '../../src/decode/decode.js';
import { NpyWriter, type RunHeader } from '../../src/output/index.js';
import { createExtractor, type Extractor } from '../../src/pipeline/extractor.js';
import { runExtraction } from '../../src/pipeline/run.js';
import { readJsonl } from '../helpers/jsonl.js';
import { missingShared, sharedPath } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';
import { TORTURE_EXPECTED as EXPECTED, assertRgbRow, readTortureManifest } from '../helpers/torture.js';

const MODEL = 'tfhub-mobilenet_v1_025_224';
const skip = missingShared('images', 'torture', 'MANIFEST.tsv') ?? missingShared('models', MODEL, 'model.json');

type Seen = Pick<DecodedImage, 'channels' | 'width' | 'height' | 'originalWidth' | 'originalHeight'> & { data: { length: number } };

test('torture set, once: every file the expected row or classified failure, upright RGB at the working size, in order into the .npy', { skip: skip ?? false }, async (tt) => {
  const manifest = readTortureManifest();
  const names = manifest.map((r) => r.name).sort();
  assert.deepEqual(names, Object.keys(EXPECTED).sort(), 'table covers exactly the manifest');
  const onDisk = readdirSync(sharedPath('images', 'torture')).filter((f) => f !== 'MANIFEST.tsv' && f !== 'SOURCE.md').sort();
  assert.deepEqual(onDisk, names, 'manifest covers exactly the directory');

  const extractor = await createExtractor({ model: sharedPath('models', MODEL), engine: 'onnx', threads: 1, cacheDir: tempDir('spp-torture-cache-') });
  // What the backbone is handed, in call order (= the rows in input order): sizes and lengths, not the pixels.
  const seen: Seen[] = [];
  const spy: Extractor = {
    ...extractor,
    extractPixels: (img) => {
      const d = img as DecodedImage;
      seen.push({ channels: d.channels, width: d.width, height: d.height, originalWidth: d.originalWidth, originalHeight: d.originalHeight, data: { length: d.data.length } });
      return extractor.extractPixels(img);
    },
  };
  const dir = tempDir('spp-torture-');
  const out = join(dir, 'torture.npy');
  const { info } = extractor;
  const header: RunHeader = {
    tool: 'spp-extract', engine: info.engine, model: info.model, modelFormat: info.format, layer: info.layer, inputRange: info.inputRange,
    levels: info.levels, pool: info.pool, normalize: info.normalize, dim: info.dim, channels: info.channels, dtype: 'float32',
    size: info.decode.size, maxSide: info.decode.maxSide, background: '#ffffff', failOn: info.decode.failOn, inputs: onDisk.length,
  };
  const items = onDisk.map((name, index) => ({ index, path: sharedPath('images', 'torture', name) }));
  const failureCalls: [string, string, string][] = [];
  const writer = await NpyWriter.create(out, header);
  let summary;
  try {
    summary = await runExtraction(items, spy, writer, { onFailure: (p, reason, message) => failureCalls.push([p, reason, message]) });
    await writer.close(summary);
  } finally {
    await extractor.dispose();
  }

  const records = readJsonl(join(dir, 'torture.manifest.jsonl')).filter((m) => m.type === 'row' || m.type === 'failure');
  assert.deepEqual(records.map((m) => m.index), items.map((it) => it.index), 'one record per input, in order');
  assert.deepEqual(records.map((m) => m.path), items.map((it) => it.path));
  const rows = records.filter((m) => m.type === 'row');
  assert.equal(seen.length, rows.length, 'the backbone saw exactly the rows');
  const decodedOf = new Map(rows.map((m, i) => [m.index as number, seen[i]]));
  const recordOf = new Map(records.map((m) => [m.path.split('/').pop() as string, m]));

  const counts: Record<string, number> = {};
  for (const row of manifest) {
    await tt.test(row.name, () => {
      const want = EXPECTED[row.name]!;
      counts[want] = (counts[want] ?? 0) + 1;
      const rec = recordOf.get(row.name)!;
      if (rec.type === 'failure') {
        assert.equal(rec.reason, want, `${row.name} (${row.description}) failed: ${rec.error}`);
        assert.ok(rec.error.startsWith(`${rec.path}: ${rec.reason}: `) && !/[\r\n]/.test(rec.error), rec.error);
        return;
      }
      assert.equal('row', want, `${row.name} (${row.description}) decoded, expected '${want}'`);
      const got = decodedOf.get(rec.index)!;
      assertRgbRow(got, row.name);
      assert.deepEqual([rec.width, rec.height], [got.originalWidth, got.originalHeight], 'the manifest records the original size');
      if (row.meta) {
        // Reported size is the oriented one: EXIF 5-8 swap the stored width/height.
        const swap = (row.meta.orientation ?? 1) >= 5;
        assert.deepEqual(
          [got.originalWidth, got.originalHeight],
          swap ? [row.meta.height, row.meta.width] : [row.meta.width, row.meta.height],
        );
      }
    });
  }
  assert.deepEqual(counts, {
    row: 72,
    'unsupported-format': 9,
    truncated: 7,
    corrupt: 3,
    empty: 2,
    'too-large': 1,
  });
  const failures = records.filter((m) => m.type === 'failure');
  assert.deepEqual(summary, { rows: 72, failures: 22, complete: true });
  assert.deepEqual(failureCalls.map(([p, r, m]) => ({ path: p, reason: r, error: m })), failures.map((f) => ({ path: f.path, reason: f.reason, error: f.error })),
    'one failure report per failed input (the CLI prints each as one line)');
  assert.equal(readFileSync(out).length, 128 + rows.length * info.dim * 4, 'the .npy holds exactly the rows');
  assert.equal(info.dim, 256 * 21);
});
