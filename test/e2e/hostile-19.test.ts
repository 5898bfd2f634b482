import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { mergeShards } from '../../src/pipeline/merge.js';
import { tempDir } from '../helpers/tmp.js';

/** A complete .jsonl shard k/n written by hand: `indices` as rows of two float32 values, under a header of `inputs`. */
function jsonlShard(dir: string, k: number, n: number | unknown, indices: number[], inputs: number, shard: object = { index: k, count: n }) {
  const path = join(dir, `s-${k}.jsonl`);
  const lines = [
    { type: 'header', tool: 'spp-extract', dim: 2, dtype: 'float32', inputs, shard },
    ...indices.map((i) => ({ type: 'row', index: i, path: `im-${i}.png`, width: 4, height: 4, descriptor: [0.5, 1] })),
    { type: 'summary', rows: indices.length, failures: 0, complete: true },
  ];
  writeFileSync(path, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  return path;
}

test('merge: edited headers cannot make it allocate or loop over what they claim (inputs 4e9, shard count 1e9, k past n)', async () => {
  const dir = tempDir('spp-hostile-merge-');
  const out = join(dir, 'm.jsonl');
  const refused = async (shards: string[], message: RegExp) => {
    const started = process.hrtime.bigint();
    await assert.rejects(mergeShards(shards, out), message);
    // Each was seconds of CPU and gigabytes (or an abort) before: the check comes first now.
    assert.ok(Number(process.hrtime.bigint() - started) / 1e9 < 2, 'refused at once');
    assert.ok(!existsSync(out), 'nothing written');
  };
  // Inputs 0..2 are in the shards, but the headers say four billion inputs.
  const big = [jsonlShard(dir, 1, 2, [0, 2], 4_000_000_000), jsonlShard(dir, 2, 2, [1], 4_000_000_000)];
  await refused(big, /headers count 4000000000 inputs, but the shards hold only 3 records/);
  await refused([jsonlShard(dir, 1, 1e9, [0, 1, 2], 3)], /missing shards 2\/1000000000, 3\/1000000000, .* and 999999989 more$/);
  // Shards 1 and 2 "of -1": every input is there, but no run wrote such a header.
  await refused([jsonlShard(dir, 1, -1, [0, 2], 3), jsonlShard(dir, 2, -1, [1], 3)], /s-1\.jsonl: the header's shard \{"index":1,"count":-1\} is not k\/n/);
  await refused([jsonlShard(dir, 1, 2, [0, 2], 3, { index: '1', count: '2' })], /the header's shard \{"index":"1","count":"2"\} is not k\/n/);
  // The untouched shards still merge.
  const ok = await mergeShards([jsonlShard(dir, 1, 2, [0, 2], 3), jsonlShard(dir, 2, 2, [1], 3)], out);
  assert.deepEqual(ok, { rows: 3, failures: 0, complete: true });
});
