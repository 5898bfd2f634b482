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

/** The temp file a run's progress shows in first: the manifest (.npy), the file itself (.jsonl), the journal (.json). */
const journalOf = (dir: string, ext: string) => join(dir, ext === 'npy' ? '.feats.manifest.jsonl.partial' : ext === 'jsonl' ? '.feats.jsonl.partial' : '.feats.json.journal.partial');

/** An output of 4 images, then 60 more added and an --update of it killed midway; the old output checked intact. */
async function killedUpdate(ext: string) {
  const dir = tempDir('spp-update-');
  const images = await imageFolder(dir, [1, 2, 3]);
  await writeImage(join(images, 'z-old.png'), 4); // kept, after every new file: put back after the continuation
  const out = join(dir, `feats.${ext}`);
  await extract([images, '-o', out]);
  const old = filesOf(out).map((f) => readFileSync(f));
  for (let s = 100; s < 160; s++) await writeImage(join(images, `new-${s}.png`), s);
  // One image decoded ahead: the run is still going when the kill lands.
  const killed = await runAndSignal([images, '-o', out, '--update', '--decode-ahead', '1', ...model()], journalOf(dir, ext), 5, 'SIGKILL');
  assert.ok(killed.sent, killed.stderr);
  assert.equal(killed.signal, 'SIGKILL', `the run ended before the kill: ${killed.stderr}`);
  filesOf(out).forEach((f, i) => assert.deepEqual(readFileSync(f), old[i], `${f} changed`));
  assert.ok(existsSync(journalOf(dir, ext)), 'the killed update left its temp files');
  return { dir, images, out };
}

for (const ext of ['npy', 'jsonl', 'json'] as const) {
  test(`--update (.${ext}) killed midway leaves the old output intact; the next --update continues its temp files and completes`, async () => {
    const { dir, images, out } = await killedUpdate(ext);
    const again = await extract([images, '-o', out, '--update']);
    const said = /continuing the interrupted update of .*: (\d+) of 64 inputs already done/.exec(again.stderr);
    assert.ok(said, again.stderr);
    const done = Number(said[1]);
    assert.ok(done >= 5 && done < 64, `${done} done before the kill`);
    // The 3 old images come first (done before the kill); z-old.png, last, is put back from the old output.
    assert.match(again.stderr, new RegExp(`done: 64 rows \\(${done} done before, 1 reused, ${63 - done} added, 0 redone, 0 dropped\\)`));
    const fresh = join(dir, `fresh.${ext}`);
    await extract([images, '-o', fresh]);
    assertSameOutput(out, fresh);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temp or lock file left');
  });
}

test('--update stopped by Ctrl-C says to finish with --update, which continues it', async () => {
  const dir = tempDir('spp-update-');
  const images = await imageFolder(dir, [1, 2, 3]);
  const out = join(dir, 'feats.jsonl');
  await extract([images, '-o', out]);
  // Enough that the run is still going when the signal lands.
  for (let s = 100; s < 220; s++) await writeImage(join(images, `new-${s}.png`), s);
  const stopped = await runAndSignal([images, '-o', out, '--update', '--decode-ahead', '1', ...model()], journalOf(dir, 'jsonl'), 5, 'SIGINT');
  assert.equal(stopped.code, 130, stopped.stderr);
  assert.ok(stopped.sent, stopped.stderr);
  assert.match(stopped.stderr, /interrupted \(finish with --update\): .*temp files; .*feats\.jsonl is still the earlier output/);
  const again = await extract([images, '-o', out, '--update']);
  assert.match(again.stderr, /continuing the interrupted update of .*feats\.jsonl: \d+ of 123 inputs already done/);
  await extract([images, '-o', join(dir, 'fresh.jsonl')]);
  assertSameOutput(out, join(dir, 'fresh.jsonl'));
});

test('an interrupted --update whose files changed since starts over, saying so; --resume finishes one as a fresh run', async () => {
  // A file it had done was replaced: its row in the temp files is stale.
  const a = await killedUpdate('npy');
  await writeImage(join(a.images, 'img-001.png'), 11);
  const replaced = await extract([a.images, '-o', a.out, '--update']);
  assert.match(replaced.stderr, /feats\.npy: the temp files of an interrupted update are stale \(a file it had done changed since\); starting over/);
  assert.match(replaced.stderr, /done: 64 rows \(3 reused, 60 added, 1 redone, 0 dropped\)/);
  await extract([a.images, '-o', join(a.dir, 'fresh.npy')]);
  assertSameOutput(a.out, join(a.dir, 'fresh.npy'));

  // A file added before the ones it had done: the input list it was writing is not this one.
  const b = await killedUpdate('npy');
  await writeImage(join(b.images, 'a-first.png'), 12);
  const added = await extract([b.images, '-o', b.out, '--update']);
  assert.match(added.stderr, /the temp files of an interrupted update are stale \(the inputs or options changed since\); starting over/);
  assert.match(added.stderr, /done: 65 rows \(4 reused, 61 added, 0 redone, 0 dropped\)/);
  await extract([b.images, '-o', join(b.dir, 'fresh.npy')]);
  assertSameOutput(b.out, join(b.dir, 'fresh.npy'));

  // --resume: the temp files are a fresh run's so far; it describes the rest.
  const c = await killedUpdate('jsonl');
  const resumed = await extract([c.images, '-o', c.out, '--resume']);
  assert.match(resumed.stderr, /resuming .*feats\.jsonl: \d+ of 64 inputs already done/);
  await extract([c.images, '-o', join(c.dir, 'fresh.jsonl')]);
  assertSameOutput(c.out, join(c.dir, 'fresh.jsonl'));
});

test('--update --pca FILE (.npy, .jsonl, .json) after adding, replacing and deleting files equals a fresh --pca run byte for byte; another projection, --pca-dim and regions are refused', async () => {
  const dir = tempDir('spp-update-');
  const images = await imageFolder(dir, [1, 2, 3, 4, 5, 6, 7, 8]);
  const proj = join(dir, 'proj.npz');
  const other = join(dir, 'other.npz');
  await extract(['fit-pca', images, '--dim', '4', '-o', proj]);
  await extract(['fit-pca', images, '--dim', '3', '-o', other]);
  for (const ext of ['npy', 'jsonl', 'json']) await extract([images, '-o', join(dir, `feats.${ext}`), '--pca', proj]);
  await writeImage(join(images, 'a-new.png'), 9); // added first: every kept row renumbered
  await writeImage(join(images, 'img-002.png'), 22); // replaced
  rmSync(join(images, 'img-004.png')); // deleted
  for (const ext of ['npy', 'jsonl', 'json']) {
    const out = join(dir, `feats.${ext}`);
    const r = await extract([images, '-o', out, '--update', '--pca', proj]);
    assert.match(r.stderr, /done: 8 rows \(6 reused, 1 added, 1 redone, 1 dropped\)/);
    const fresh = join(dir, `fresh.${ext}`);
    await extract([images, '-o', fresh, '--pca', proj]);
    assertSameOutput(out, fresh, `a fresh --pca run's (.${ext})`);
  }
  const before = snapshot(dir);
  const refusals: [string[], RegExp][] = [
    [['--pca', other], /--update: .*feats\.npy was made with different options \(.*pca.*\); use --force to start over/],
    [[], /--update: .*feats\.npy was made with different options \(.*pca.*\)/],
    [['--pca-dim', '4'], /--update with --pca-dim: it fits the projection on the inputs, so every row changes as they do; fit once \(`spp-extract fit-pca … -o proj\.npz`\) and give --update --pca proj\.npz; for an output made with --pca-dim, --pca .*feats\.pca\.npz is the projection it was made with/],
    [['--grid', '2x2'], /--update with --grid is not supported yet: region rows are several per image, and --update keeps rows by image; run again with --force/],
  ];
  for (const [args, message] of refusals) {
    const r = await runCli([images, '-o', join(dir, 'feats.npy'), '--update', ...args, ...model()]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
  }
  assert.deepEqual(snapshot(dir), before, 'a refused --update touches nothing');
});
