import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readBoxesFile } from '../../src/inputs/boxes.js';
import { mergeShards } from '../../src/pipeline/merge.js';
import { runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
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

/** The CLI with its home and caches in a temp folder; killed if it hangs (the failure these tests guard against). */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const home = tempDir('spp-hostile-home-');
  return runCli(args, { killAfterMs: 20_000, env: { HOME: home, XDG_CACHE_HOME: join(home, 'cache'), SPP_EXTRACT_CACHE: join(home, 'cache'), SPP_EXTRACT_MODEL: '', SPP_EXTRACT_MODEL_MIRROR: '', ...env } });
};

test('a FIFO in a mirror folder or a --model folder is refused, naming it (the read, and then the exit, waited for a writer forever)', async () => {
  const mirror = tempDir('spp-hostile-mirror-');
  mkdirSync(join(mirror, 'mobilenet_v1_0.50'));
  execFileSync('mkfifo', [join(mirror, 'mobilenet_v1_0.50', 'model.json')]);
  const pull = await cli(['models', 'pull', 'mobilenet_v1_0.50'], { SPP_EXTRACT_MODEL_MIRROR: mirror });
  assert.equal(pull.signal, null, 'it ended on its own');
  assert.equal(pull.code, 1, pull.stderr);
  assert.match(pull.stderr, /^spp-extract: error: .*mobilenet_v1_0\.50\/model\.json: it is not a regular file \(a FIFO\)/);

  const model = tempDir('spp-hostile-model-');
  cpSync(fixture('tiny-layers'), model, { recursive: true });
  rmSync(join(model, 'group1-shard1of1.bin'));
  execFileSync('mkfifo', [join(model, 'group1-shard1of1.bin')]);
  const out = join(tempDir('spp-hostile-out-'), 'x.jsonl');
  const run = await cli([fixture('images', 'red-64x48.png'), '-o', out, '--model', model, '--engine', 'onnx', '--threads', '1', '-q']);
  assert.equal(run.signal, null, 'it ended on its own');
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /weight file 'group1-shard1of1\.bin' is missing or unreadable \(.*group1-shard1of1\.bin is not a regular file \(a FIFO\)\)/);
  assert.ok(!existsSync(out), 'nothing written');
});

test('lists nested 100000 deep in a --boxes line or a shard are refused naming the file and line (the message overflowed the stack)', async () => {
  const dir = tempDir('spp-hostile-deep-');
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const boxes = join(dir, 'boxes.jsonl');
  writeFileSync(boxes, `{"path":"a.png","boxes":[[0,0,4,4]]}\n{"path":"b.png","boxes":[${deep}]}\n`);
  await assert.rejects(readBoxesFile(boxes), (err: Error) => err.message === `--boxes ${boxes}:2: lists or objects nested more than 32 levels deep; a line is {"path", "boxes": [[x0, y0, x1, y1], …]}`);

  const one = jsonlShard(dir, 1, 2, [0, 2], 3);
  const two = jsonlShard(dir, 2, 2, [1], 3);
  const [head, ...rest] = readFileSync(two, 'utf8').split('\n');
  writeFileSync(two, [`${head.slice(0, -1)},"note":${deep}}`, ...rest].join('\n'));
  await assert.rejects(mergeShards([one, two], join(dir, 'm.jsonl')), /s-2\.jsonl line 1: lists or objects nested more than 32 levels deep/);
  writeFileSync(two, [head, rest[0].replace('"path":"im-1.png"', `"path":${deep}`), ...rest.slice(1)].join('\n'));
  await assert.rejects(mergeShards([one, two], join(dir, 'm.jsonl')), /s-2\.jsonl line 2: lists or objects nested more than 32 levels deep/);
});
