/**
 * Issue 20, item 1: --update with --shard K/N. Each shard updates its own output (a file's shard
 * depends on its path alone); rows are numbered in the full input list, so kept rows are renumbered
 * when files come or go before them; merging the updated shards gives what merging fresh shards,
 * and one fresh unsharded run, write: byte for byte.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { shardOfPath } from '../../src/inputs/shard.js';
import { runAndSignal, runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';
import { assertSameOutput, filesOf, imageFolder, writeImage } from '../helpers/update.js';

const SHARDS = 3;
let cache = '';
const model = () => ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache];

before(() => {
  cache = join(tempDir('spp-update-shards-'), 'cache');
});

/** Runs the CLI; exit 0, or 2 where a file fails to decode. */
async function cli(args: string[], codes = [0, 2]) {
  const r = await runCli(args[0] === 'merge' ? args : [...args, ...model()]);
  assert.ok(codes.includes(r.code ?? -1), `exit ${r.code}: ${r.stderr}`);
  return r;
}

/** Shards 1..N of one run into DIR/PREFIX-K.EXT; their paths. */
async function shards(images: string, dir: string, prefix: string, ext: string, more: string[] = []): Promise<{ paths: string[]; stderr: string[] }> {
  const paths: string[] = [];
  const stderr: string[] = [];
  for (let k = 1; k <= SHARDS; k++) {
    const r = await cli([images, '-o', join(dir, `${prefix}-{shard}.${ext}`), '--shard', `${k}/${SHARDS}`, ...more]);
    paths.push(join(dir, `${prefix}-${k}.${ext}`));
    stderr.push(r.stderr);
  }
  return { paths, stderr };
}

for (const ext of ['npy', 'jsonl', 'json'] as const) {
  test(`--update --shard K/${SHARDS} (.${ext}) after adding, replacing and deleting files: merged, byte for byte a fresh sharded run merged and a fresh unsharded run`, async () => {
    const dir = tempDir('spp-update-shards-');
    const images = await imageFolder(dir, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    writeFileSync(join(images, 'img-000.png'), 'not an image'); // failed before: tried again
    await shards(images, dir, 'part', ext);

    await writeImage(join(images, 'a-new.png'), 50); // added first: every later row is renumbered
    await writeImage(join(images, 'img-010.png'), 10); // added last
    await writeImage(join(images, 'img-002.png'), 22); // replaced: same path, other bytes
    rmSync(join(images, 'img-004.png')); // deleted

    const updated = await shards(images, dir, 'part', ext, ['--update']);
    // What each shard's summary must say, from the shard each file's path falls in.
    const expected = Array.from({ length: SHARDS }, () => ({ reused: 0, added: 0, redone: 0, dropped: 0 }));
    const count = (name: string, what: keyof (typeof expected)[0]) => expected[shardOfPath(join(images, name), SHARDS) - 1]![what]++;
    for (const n of [1, 3, 5, 6, 7, 8, 9]) count(`img-00${n}.png`, 'reused');
    ['a-new.png', 'img-010.png'].forEach((n) => count(n, 'added'));
    ['img-000.png', 'img-002.png'].forEach((n) => count(n, 'redone'));
    count('img-004.png', 'dropped');
    updated.stderr.forEach((stderr, i) => {
      const e = expected[i]!;
      assert.match(stderr, new RegExp(`done: \\d+ rows? \\(${e.reused} reused, ${e.added} added, ${e.redone} redone, ${e.dropped} dropped\\)`), `shard ${i + 1}/${SHARDS}`);
    });

    const fresh = await shards(images, dir, 'fresh', ext);
    fresh.paths.forEach((p, i) => assertSameOutput(updated.paths[i]!, p, `fresh shard ${i + 1}/${SHARDS}'s`));
    const merged = join(dir, `merged.${ext}`);
    const freshMerged = join(dir, `fresh-merged.${ext}`);
    await cli(['merge', ...updated.paths, '-o', merged]);
    await cli(['merge', ...fresh.paths, '-o', freshMerged]);
    const single = join(dir, `single.${ext}`);
    await cli([images, '-o', single]);
    assertSameOutput(merged, freshMerged, 'the merge of fresh shards');
    assertSameOutput(merged, single, 'a fresh unsharded run');
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temp or lock file left');
  });
}

test('--update of a shard none of whose files changed still rewrites it when files were added to another shard (the header counts every input)', async () => {
  const dir = tempDir('spp-update-shards-');
  const images = await imageFolder(dir, [1, 2, 3, 4, 5, 6]);
  await shards(images, dir, 'part', 'npy');
  const last = join(images, 'zz-last.png');
  await writeImage(last, 60); // sorts last: no row of another shard is renumbered
  const other = (shardOfPath(last, SHARDS) % SHARDS) + 1;
  const r = await cli([images, '-o', join(dir, `part-${other}.npy`), '--shard', `${other}/${SHARDS}`, '--update'], [0]);
  assert.doesNotMatch(r.stderr, /up to date/);
  assert.match(r.stderr, /\(\d+ reused, 0 added, 0 redone, 0 dropped\)/);
  // Another split is another output: refused, naming both.
  const split = await cli([images, '-o', join(dir, 'part-1.npy'), '--shard', `1/${SHARDS + 1}`, '--update'], [1]);
  assert.match(split.stderr, new RegExp(`--update: .*part-1\\.npy was made with --shard 1/${SHARDS}, this run has --shard 1/${SHARDS + 1}: each shard updates its own output`));
  const fresh = await shards(images, dir, 'fresh', 'npy');
  assertSameOutput(join(dir, `part-${other}.npy`), fresh.paths[other - 1]!, `fresh shard ${other}/${SHARDS}'s`);
});

test('a shard\'s --update killed midway continues with --update; the merged shards equal a fresh run', async () => {
  const dir = tempDir('spp-update-shards-');
  const images = await imageFolder(dir, [1, 2, 3, 4, 5, 6]);
  const parts = (await shards(images, dir, 'part', 'npy')).paths;
  const added = Array.from({ length: 150 }, (_, i) => join(images, `new-${100 + i}.png`));
  for (const [i, p] of added.entries()) await writeImage(p, 100 + i);
  // The shard that gets the most new files is the one cut short.
  const per = Array.from({ length: SHARDS }, (_, k) => added.filter((p) => shardOfPath(p, SHARDS) === k + 1).length);
  const k = per.indexOf(Math.max(...per)) + 1;
  const old = filesOf(parts[k - 1]!).map((f) => readFileSync(f));
  const args = [images, '-o', parts[k - 1]!, '--shard', `${k}/${SHARDS}`, '--update', ...model()];
  // One image decoded ahead: the run is still going when the kill lands.
  const killed = await runAndSignal([...args, '--decode-ahead', '1'], join(dir, `.part-${k}.manifest.jsonl.partial`), 5, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL', `the run ended before the kill: ${killed.stderr}`);
  filesOf(parts[k - 1]!).forEach((f, i) => assert.deepEqual(readFileSync(f), old[i], `${f} changed`));
  const again = await cli(args.slice(0, 6), [0]);
  assert.match(again.stderr, /continuing the interrupted update of .*part-\d\.npy: \d+ of \d+ inputs already done/);
  for (let j = 1; j <= SHARDS; j++) if (j !== k) await cli([images, '-o', parts[j - 1]!, '--shard', `${j}/${SHARDS}`, '--update'], [0]);
  await cli(['merge', ...parts, '-o', join(dir, 'merged.npy')]);
  await cli([images, '-o', join(dir, 'single.npy')]);
  assertSameOutput(join(dir, 'merged.npy'), join(dir, 'single.npy'), 'a fresh unsharded run');
});
