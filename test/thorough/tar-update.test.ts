/**
 * Issue 20, item 2: --resume and --update with tar shard inputs. A run over archives cut short
 * finishes with --resume as if never stopped; --update over archives keeps the rows of members whose
 * bytes hash the same and equals a fresh run byte for byte.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { runAndSignal, runCli } from '../helpers/cli.js';
import { syntheticPixels } from '../helpers/pixels.js';
import { fixture } from '../helpers/shared.js';
import { tarOf, type Member } from '../helpers/tar.js';
import { tempDir } from '../helpers/tmp.js';

let cache = '';
const model = () => ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache];
const manifestOf = (npy: string) => npy.replace(/\.npy$/, '.manifest.jsonl');
/** The files an output is made of. */
const filesOf = (out: string) => (out.endsWith('.npy') ? [out, manifestOf(out)] : [out]);

before(() => {
  cache = join(tempDir('spp-tar-update-'), 'cache');
});

/** A small PNG of deterministic noise: distinct bytes (and SHA-256) per seed. */
async function png(seed: number, width = 40): Promise<Buffer> {
  const { data, height } = syntheticPixels(width, 30, seed);
  return sharp(Buffer.from(data), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

async function members(seeds: readonly number[]): Promise<Member[]> {
  return Promise.all(seeds.map(async (s) => ({ header: { name: `${String(s).padStart(4, '0')}.png` }, body: await png(s) })));
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

async function cli(args: string[], codes = [0]) {
  const r = await runCli([...args, ...model()]);
  assert.ok(codes.includes(r.code!), `exit ${r.code}: ${r.stderr}`);
  return r;
}

/** Two archives, of 200 and 40 members: the kill lands inside the first, so the resume starts mid-archive. */
async function twoArchives(dir: string): Promise<string[]> {
  const tars = [join(dir, '00000.tar'), join(dir, '00001.tar')];
  writeFileSync(tars[0]!, await tarOf([{ header: { name: 'notes.txt' }, body: Buffer.from('not an input') }, ...await members(range(1, 200))]));
  writeFileSync(tars[1]!, await tarOf(await members(range(201, 40))));
  return tars;
}

async function killedRun(dir: string, tars: string[], out: string) {
  const journal = join(dir, out.endsWith('.npy') ? '.feats.manifest.jsonl.partial' : '.feats.jsonl.partial');
  const killed = await runAndSignal([...tars, '-o', out, ...model(), '--decode-ahead', '1'], journal, 8, 'SIGKILL');
  assert.ok(killed.sent, killed.stderr);
  assert.equal(killed.signal, 'SIGKILL', `the run ended before the kill: ${killed.stderr}`);
  return journal;
}

for (const ext of ['npy', 'jsonl'] as const) {
  test(`--resume (.${ext}) over tar archives after a kill equals an uninterrupted run byte for byte`, async () => {
    const dir = tempDir('spp-tar-update-');
    const tars = await twoArchives(dir);
    const out = join(dir, `feats.${ext}`);
    const journal = await killedRun(dir, tars, out);
    const done = readFileSync(journal, 'utf8').split('\n').length - 2;
    assert.ok(done >= 8 && done < 200, `the kill landed inside the first archive (${done} records)`);
    const resumed = await cli([...tars, '-o', out, '--resume']);
    assert.match(resumed.stderr, /resuming .*: \d+ of 240 inputs already done/);
    const fresh = join(dir, `fresh.${ext}`);
    await cli([...tars, '-o', fresh]);
    filesOf(out).forEach((f, i) => assert.deepEqual(readFileSync(f), readFileSync(filesOf(fresh)[i]!), `${f} differs from an uninterrupted run's`));
  });
}

test('--resume refuses archives changed since the interrupted run (member added, renamed, or replaced by other bytes); what is on disk is kept', async () => {
  const dir = tempDir('spp-tar-update-');
  const tars = await twoArchives(dir);
  const out = join(dir, 'feats.npy');
  const journal = await killedRun(dir, tars, out);
  const kept = readFileSync(journal);
  const original = readFileSync(tars[0]!);
  const refused = async (why: RegExp) => {
    const r = await runCli([...tars, '-o', out, '--resume', ...model()]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, why);
    assert.deepEqual(readFileSync(journal), kept, 'the interrupted run\'s files are left as they were');
    assert.ok(!existsSync(out));
  };
  // A member appended to the second archive: one input more than the run was started with.
  writeFileSync(tars[1]!, await tarOf(await members(range(201, 41))));
  await refused(/--resume: .*feats\.npy was made with different options \(inputs: 240 before, 241 now\); use --force to start over/);
  writeFileSync(tars[1]!, await tarOf(await members(range(201, 40))));
  // The first member renamed: the journal's first record names another input.
  const renamed = await members(range(1, 200));
  renamed[0]!.header.name = 'renamed.png';
  writeFileSync(tars[0]!, await tarOf(renamed));
  await refused(/--resume: input 0 was '.*00000\.tar#0001\.png' before and is '.*00000\.tar#renamed\.png' now; the input list changed; use --force to start over/);
  // The first member replaced by other bytes under the same name: caught by its SHA-256.
  const replaced = await members(range(1, 200));
  replaced[0]!.body = await png(1000);
  writeFileSync(tars[0]!, await tarOf(replaced));
  await refused(/--resume: .*00000\.tar#0001\.png changed since the interrupted run \(its SHA-256 differs\); use --force to start over/);
  // Put back as it was, the run finishes.
  writeFileSync(tars[0]!, original);
  await cli([...tars, '-o', out, '--resume']);
});

for (const ext of ['npy', 'jsonl', 'json'] as const) {
  test(`--update (.${ext}) over archives after adding, replacing and deleting members and adding an archive equals a fresh run byte for byte`, async () => {
    const dir = tempDir('spp-tar-update-');
    const [a, b, c] = [join(dir, '00000.tar'), join(dir, '00001.tar'), join(dir, '00002.tar')];
    // 00000.tar: a member that fails to decode (tried again, fails the same way); 00001.tar does not change.
    writeFileSync(a, await tarOf([...await members([1, 2, 3, 4]), { header: { name: 'bad.png' }, body: Buffer.from('not an image') }]));
    writeFileSync(b, await tarOf(await members([10, 11])));
    const out = join(dir, `feats.${ext}`);
    await cli([join(dir, '*.tar'), '-o', out], [2]);
    const unchanged = readFileSync(b);
    const changed = await members([1, 2, 4, 5]); // 3 deleted, 5 added
    changed[1]!.body = await png(22); // 2 replaced: same name, other bytes
    writeFileSync(a, await tarOf([...changed, { header: { name: 'bad.png' }, body: Buffer.from('not an image') }]));
    writeFileSync(c, await tarOf(await members([20]))); // a new archive
    const updated = await cli([join(dir, '*.tar'), '-o', out, '--update'], [2]);
    assert.match(updated.stderr, /done: 7 rows \(4 reused, 2 added, 2 redone, 1 dropped\), 1 failed/);
    assert.deepEqual(readFileSync(b), unchanged);
    const fresh = join(dir, `fresh.${ext}`);
    await cli([join(dir, '*.tar'), '-o', fresh], [2]);
    filesOf(out).forEach((f, i) => assert.deepEqual(readFileSync(f), readFileSync(filesOf(fresh)[i]!), `${f} differs from a fresh run's`));
    // Nothing changed since: every row reused, only the failed member tried again.
    const again = await cli([join(dir, '*.tar'), '-o', out, '--update'], [2]);
    assert.match(again.stderr, /done: 7 rows \(7 reused, 0 added, 1 redone, 0 dropped\), 1 failed/);
    filesOf(out).forEach((f, i) => assert.deepEqual(readFileSync(f), readFileSync(filesOf(fresh)[i]!), `${f} differs from a fresh run's`));
  });
}

/** One WebDataset sample: its image (by seed) and its sidecar's text, if it has one, after or before the image. */
type Sample = { key: string; seed: number; json?: string; first?: boolean };

async function samples(list: readonly Sample[]): Promise<Member[]> {
  const out: Member[] = [];
  for (const s of list) {
    const img: Member = { header: { name: `${s.key}.png` }, body: await png(s.seed) };
    const side: Member[] = s.json === undefined ? [] : [{ header: { name: `${s.key}.json` }, body: Buffer.from(s.json, 'utf8') }];
    out.push(...(s.first ? [...side, img] : [img, ...side]));
  }
  return out;
}

const KEEPS: Sample[] = [
  { key: 'a', seed: 1, json: '{"caption":"unchanged"}' },
  { key: 'b', seed: 2, json: '{"caption":"before the edit"}' },
  { key: 'c', seed: 3, json: '{"caption":"same sidecar, other image"}' },
  { key: 'd', seed: 4 },
  { key: 'e', seed: 5, json: '{"caption":"to be removed"}' },
  { key: 'f', seed: 6, json: '{"caption":"to be broken"}' },
  { key: 'g', seed: 7, json: '{"caption":"unchanged, before its image"}', first: true },
  { key: 'h', seed: 8, json: '["unchanged", "not an object"]' },
];
const EDITED: Sample[] = [
  KEEPS[0]!,
  { key: 'b', seed: 2, json: '{"caption":"after the edit"}' }, // (a) sidecar edited, image unchanged
  { key: 'c', seed: 33, json: KEEPS[2]!.json }, // (b) image replaced, sidecar unchanged
  { key: 'd', seed: 4, json: '{"caption":"added"}' }, // (c) sidecar added
  { key: 'e', seed: 5 }, // (d) sidecar removed
  { key: 'f', seed: 6, json: '{"caption": oops' }, // (e) sidecar made invalid
  KEEPS[6]!,
  KEEPS[7]!,
];

for (const ext of ['npy', 'jsonl', 'json'] as const) {
  test(`--update --keep-json (.${ext}): a row is redone when its sidecar is edited, added, removed or broken, or its image replaced; the result equals a fresh --keep-json run byte for byte`, async () => {
    const dir = tempDir('spp-tar-update-');
    const tar = join(dir, '00000.tar');
    writeFileSync(tar, await tarOf(await samples(KEEPS)));
    const out = join(dir, `feats.${ext}`);
    await cli([tar, '-o', out, '--keep-json']);
    // The stored rows hold sidecars: an --update without --keep-json would drop them, and is refused.
    const plain = await runCli([tar, '-o', out, '--update', ...model()]);
    assert.equal(plain.code, 1, plain.stderr);
    assert.match(plain.stderr, /--update: .*feats\.\w+ was made with different options \(.*--keep-json.*\); use --force to start over/);
    writeFileSync(tar, await tarOf(await samples(EDITED)));
    const updated = await cli([tar, '-o', out, '--update', '--keep-json']);
    assert.match(updated.stderr, /done: 8 rows \(3 reused, 0 added, 5 redone, 0 dropped\), 0 failed/);
    const fresh = join(dir, `fresh.${ext}`);
    await cli([tar, '-o', fresh, '--keep-json']);
    filesOf(out).forEach((f, i) => assert.deepEqual(readFileSync(f), readFileSync(filesOf(fresh)[i]!), `${f} differs from a fresh run's`));
    // Nothing changed since: every row and its json kept as they are.
    const again = await cli([tar, '-o', out, '--update', '--keep-json']);
    assert.match(again.stderr, /is up to date \(8 rows reused\); nothing to do/);
    // Renumbered (a sample added in front): every kept row's json is read back from the stored output.
    writeFileSync(tar, await tarOf(await samples([{ key: '0', seed: 9, json: '{"caption":"new"}' }, ...EDITED])));
    const renumbered = await cli([tar, '-o', out, '--update', '--keep-json']);
    assert.match(renumbered.stderr, /done: 9 rows \(8 reused, 1 added, 0 redone, 0 dropped\), 0 failed/);
    await cli([tar, '-o', fresh, '--keep-json', '--force']);
    filesOf(out).forEach((f, i) => assert.deepEqual(readFileSync(f), readFileSync(filesOf(fresh)[i]!), `${f} differs from a fresh run's`));
  });
}

/** An --update --keep-json of 4 samples grown to 124, killed midway (the temp files hold the 4 kept rows and some new ones). */
async function killedKeepJsonUpdate() {
  const dir = tempDir('spp-tar-update-');
  const tar = join(dir, '00000.tar');
  const old: Sample[] = range(1, 4).map((s) => ({ key: `k${s}`, seed: s, json: JSON.stringify({ caption: `old ${s}` }) }));
  writeFileSync(tar, await tarOf(await samples(old)));
  const out = join(dir, 'feats.jsonl');
  await cli([tar, '-o', out, '--keep-json']);
  const grown = [...old, ...range(100, 120).map((s) => ({ key: `n${s}`, seed: s, json: JSON.stringify({ caption: `new ${s}` }) }))];
  writeFileSync(tar, await tarOf(await samples(grown)));
  const killed = await runAndSignal([tar, '-o', out, '--update', '--keep-json', '--decode-ahead', '1', ...model()], join(dir, '.feats.jsonl.partial'), 8, 'SIGKILL');
  assert.ok(killed.sent, killed.stderr);
  assert.equal(killed.signal, 'SIGKILL', `the run ended before the kill: ${killed.stderr}`);
  return { dir, tar, out, grown };
}

test('--update --keep-json killed midway continues its temp files; after a sidecar of a row it had done is edited, they are stale and it starts over; both equal a fresh run', async () => {
  const a = await killedKeepJsonUpdate();
  const continued = await cli([a.tar, '-o', a.out, '--update', '--keep-json']);
  assert.match(continued.stderr, /continuing the interrupted update of .*feats\.jsonl: \d+ of 124 inputs already done/);
  const fresh = join(a.dir, 'fresh.jsonl');
  await cli([a.tar, '-o', fresh, '--keep-json']);
  assert.deepEqual(readFileSync(a.out), readFileSync(fresh), 'the continued update equals a fresh run');

  const b = await killedKeepJsonUpdate();
  // The first sample's row was put back into the temp files; its sidecar now says something else.
  b.grown[0] = { ...b.grown[0]!, json: JSON.stringify({ caption: 'edited after the kill' }) };
  writeFileSync(b.tar, await tarOf(await samples(b.grown)));
  const again = await cli([b.tar, '-o', b.out, '--update', '--keep-json']);
  assert.match(again.stderr, /the temp files of an interrupted update are stale \(a file it had done changed since\); starting over/);
  assert.match(again.stderr, /done: 124 rows \(3 reused, 120 added, 1 redone, 0 dropped\)/);
  await cli([b.tar, '-o', join(b.dir, 'fresh.jsonl'), '--keep-json']);
  assert.deepEqual(readFileSync(b.out), readFileSync(join(b.dir, 'fresh.jsonl')), 'the update started over equals a fresh run');
});
