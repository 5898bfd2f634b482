/**
 * Issue 20, item 1: --update keeps the rows of unchanged files (same path, same SHA-256), describes
 * new or changed ones, drops removed ones, and writes what a fresh run over the current inputs
 * writes, byte for byte; the stored output stays intact until the new one is complete.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { runAndSignal, runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';
import { assertSameOutput, filesOf, imageFolder, manifestOf, snapshot, writeImage } from '../helpers/update.js';

let cache = '';
const model = (which = 'tiny-layers') => ['--model', fixture(which), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache];

before(() => {
  cache = join(tempDir('spp-update-'), 'cache');
});

async function extract(args: string[]) {
  const r = await runCli([...args, ...model()]);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

for (const ext of ['npy', 'jsonl', 'json'] as const) {
  test(`--update (.${ext}) after adding, replacing and deleting files equals a fresh run byte for byte`, async () => {
    const dir = tempDir('spp-update-');
    const images = await imageFolder(dir, [1, 2, 3, 4, 5]);
    // A file that fails to decode is tried again (and fails the same way).
    writeFileSync(join(images, 'img-000.png'), 'not an image');
    const out = join(dir, `feats.${ext}`);
    const first = await runCli([images, '-o', out, ...model()]);
    assert.equal(first.code, 2, first.stderr);
    await writeImage(join(images, 'img-006.png'), 6); // added
    await writeImage(join(images, 'img-002.png'), 22); // replaced: same path, other bytes
    rmSync(join(images, 'img-004.png')); // deleted
    const updated = await runCli([images, '-o', out, '--update', ...model()]);
    assert.equal(updated.code, 2, updated.stderr);
    assert.match(updated.stderr, /done: 5 rows \(3 reused, 1 added, 2 redone, 1 dropped\), 1 failed/);
    const fresh = join(dir, `fresh.${ext}`);
    await runCli([images, '-o', fresh, ...model()]);
    assertSameOutput(out, fresh);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temp or lock file left');
    // Every row records its file's identity.
    const text = readFileSync(ext === 'npy' ? manifestOf(out) : out, 'utf8');
    assert.equal(text.match(/"sha256":"[0-9a-f]{64}"/g)?.length, 5);
  });
}

test('--update with nothing changed leaves the output untouched', async () => {
  const dir = tempDir('spp-update-');
  const images = await imageFolder(dir, [1, 2]);
  const out = join(dir, 'feats.npy');
  await extract([images, '-o', out]);
  const before = snapshot(dir);
  const r = await extract([images, '-o', out, '--update']);
  assert.match(r.stderr, /is up to date \(2 rows reused\); nothing to do/);
  assert.deepEqual(snapshot(dir), before);
});

test('--update refuses an output made with other options or another model, an incomplete one and none', async () => {
  const dir = tempDir('spp-update-');
  const images = await imageFolder(dir, [1, 2]);
  const out = join(dir, 'feats.npy');
  await extract([images, '-o', out]);
  const before = snapshot(dir);
  const levels = await runCli([images, '-o', out, '--update', ...model(), '--levels', '1,2']);
  assert.equal(levels.code, 1, levels.stderr);
  assert.match(levels.stderr, /--update: .*feats\.npy was made with different options \(--levels: \[1,2,4\] before, \[1,2\] now; dim: 126 before, 30 now\); use --force to start over/);
  const other = await runCli([images, '-o', out, '--update', ...model('tiny-graph')]);
  assert.equal(other.code, 1, other.stderr);
  assert.match(other.stderr, /was made with different options \(.*the model's content/);
  assert.deepEqual(snapshot(dir), before);

  const none = await runCli([images, '-o', join(dir, 'none.npy'), '--update', ...model()]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /--update: .*none\.npy does not exist: nothing to update \(run without --update\)/);
  writeFileSync(join(dir, '.cut.jsonl.partial'), '');
  const cut = await runCli([images, '-o', join(dir, 'cut.jsonl'), '--update', ...model()]);
  assert.equal(cut.code, 1);
  assert.match(cut.stderr, /--update: .*cut\.jsonl is not complete \(an interrupted run left .*\): finish it with --resume first/);
  const shard = await runCli([images, '-o', out, '--update', '--shard', '1/2', ...model()]);
  assert.equal(shard.code, 1);
  assert.match(shard.stderr, /--update: .*feats\.npy was made with no --shard, this run has --shard 1\/2: each shard updates its own output; give the --shard it was made with/);
  const resume = await runCli([images, '-o', out, '--update', '--resume', ...model()]);
  assert.equal(resume.code, 1);
  assert.match(resume.stderr, /--update and --resume contradict each other/);
  assert.deepEqual(snapshot(dir), { ...before, '.cut.jsonl.partial': '' });
});

test('--update killed midway leaves the old output intact; the next --update starts over and completes', async () => {
  const dir = tempDir('spp-update-');
  const images = await imageFolder(dir, [1, 2, 3]);
  const out = join(dir, 'feats.npy');
  await extract([images, '-o', out]);
  const old = filesOf(out).map((f) => readFileSync(f));
  for (let s = 100; s < 160; s++) await writeImage(join(images, `new-${s}.png`), s);
  const killed = await runAndSignal([images, '-o', out, '--update', ...model()], join(dir, '.feats.manifest.jsonl.partial'), 5, 'SIGKILL');
  assert.ok(killed.sent, killed.stderr);
  assert.equal(killed.signal, 'SIGKILL', `the run ended before the kill: ${killed.stderr}`);
  filesOf(out).forEach((f, i) => assert.deepEqual(readFileSync(f), old[i], `${f} changed`));
  assert.ok(existsSync(join(dir, '.feats.npy.partial')), 'the killed update left its temp files');
  const again = await extract([images, '-o', out, '--update']);
  assert.match(again.stderr, /63 rows \(3 reused, 60 added, 0 redone, 0 dropped\)/);
  const fresh = join(dir, 'fresh.npy');
  await extract([images, '-o', fresh]);
  assertSameOutput(out, fresh);
});
