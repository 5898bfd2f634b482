import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { IMAGE_EXTENSIONS } from '../../src/inputs/expand.js';
import { TarTooManyMembersError, listTar, webDatasetKey } from '../../src/inputs/tar.js';
import { runCli } from '../helpers/cli.js';
import { tarOf, type Member } from '../helpers/tar.js';
import { readJsonl } from '../helpers/jsonl.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const TINY = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '-q'];
const tmp = () => tempDir('spp-tar-');
/** The CLI with its caches in a temp folder, never the user's. */
const cli = (args: string[], opts: { cwd?: string; stdin?: string } = {}) => {
  const home = tmp();
  return runCli(args, { ...opts, env: { HOME: home, XDG_CACHE_HOME: join(home, 'cache'), SPP_EXTRACT_CACHE: join(home, 'cache') } });
};

const IMAGES = ['nested/blue-alpha-40x90.png', 'nested/gray-100x70.webp', 'noise-100x70.jpg', 'not-an-image.jpg', 'red-64x48.png'];
/** The fixture images as members, in the order a folder walk lists them (byte order of the relative paths). */
const imageMembers = (): Member[] => IMAGES.map((name) => ({ header: { name }, body: readFileSync(fixture('images', name)) }));

/** A manifest's records without the header and the run-time fields. */
const records = (manifest: string) => readJsonl(manifest).filter((l) => l.type === 'row' || l.type === 'failure');

test('tar members give the same descriptors as the same files loose (.npy bytes); paths are ARCHIVE#NAME with the WebDataset key', async () => {
  const dir = tmp();
  const archive = join(dir, '00000.tar');
  writeFileSync(archive, await tarOf([{ header: { name: 'caption.txt' }, body: Buffer.from('not an input') }, ...imageMembers()]));
  const loose = await cli([fixture('images'), '-o', join(dir, 'loose.npy'), ...TINY]);
  assert.equal(loose.code, 2, loose.stderr); // not-an-image.jpg fails in both
  const packed = await cli([join(dir, '*.tar'), '-o', join(dir, 'packed.npy'), ...TINY]);
  assert.equal(packed.code, 2, packed.stderr);
  assert.deepEqual(readFileSync(join(dir, 'packed.npy')), readFileSync(join(dir, 'loose.npy')));
  const a = records(join(dir, 'loose.manifest.jsonl'));
  const b = records(join(dir, 'packed.manifest.jsonl'));
  assert.equal(b.length, IMAGES.length);
  b.forEach((rec, i) => {
    const name = relative(fixture('images'), a[i].path);
    assert.equal(rec.path, `${archive}#${name}`);
    assert.equal(rec.key, webDatasetKey(name));
    const { path: _p, key: _k, error, ...rest } = rec;
    const { path: _q, error: looseError, ...looseRest } = a[i];
    assert.deepEqual(rest, looseRest);
    if (error) assert.equal(error.split(': ')[1], looseError.split(': ')[1], 'same reason');
  });
  // Gzip-compressed, the same rows.
  writeFileSync(join(dir, 'z.tar.gz'), gzipSync(readFileSync(archive)));
  const gz = await cli([join(dir, 'z.tar.gz'), '-o', join(dir, 'gz.npy'), ...TINY]);
  assert.equal(gz.code, 2, gz.stderr);
  assert.deepEqual(readFileSync(join(dir, 'gz.npy')), readFileSync(join(dir, 'loose.npy')));
});

test('archives listed on stdin are read as archives, as when named; a missing one is its recorded failure; folder walks skip archives', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'a.tar'), await tarOf(imageMembers().slice(0, 2)));
  mkdirSync(join(dir, 'walk'));
  writeFileSync(join(dir, 'walk', 'b.tar'), await tarOf(imageMembers().slice(2, 3)));
  writeFileSync(join(dir, 'walk', 'red.png'), readFileSync(fixture('images', 'red-64x48.png')));
  const r = await cli(['-', 'walk', '-o', 'o.jsonl', ...TINY], { cwd: dir, stdin: 'a.tar\ngone.tar\nwalk/red.png\n' });
  assert.equal(r.code, 2, r.stderr);
  assert.deepEqual(records(join(dir, 'o.jsonl')).map((l) => [l.path, l.type, l.reason]), [
    ['a.tar#nested/blue-alpha-40x90.png', 'row', undefined],
    ['a.tar#nested/gray-100x70.webp', 'row', undefined],
    ['gone.tar', 'failure', 'missing'],
    ['walk/red.png', 'row', undefined],
    ['walk/red.png', 'row', undefined],
  ]);
  const named = await cli(['a.tar', '-o', 'named.jsonl', ...TINY], { cwd: dir });
  assert.equal(named.code, 0, named.stderr);
  assert.deepEqual(records(join(dir, 'named.jsonl')).map((l) => l.descriptor), records(join(dir, 'o.jsonl')).slice(0, 2).map((l) => l.descriptor));
});

test('--shard gives each task whole archives; merging the shards equals one run (npy, jsonl) with the keys kept', async () => {
  const dir = tmp();
  for (let i = 0; i < 4; i++) writeFileSync(join(dir, `0000${i}.tar`), await tarOf(imageMembers().slice(i % 2, 3 + (i % 2))));
  for (const ext of ['npy', 'jsonl']) {
    const full = await cli([join(dir, '*.tar'), '-o', join(dir, `full.${ext}`), ...TINY]);
    assert.ok(full.code === 0 || full.code === 2, full.stderr);
    const shards: string[] = [];
    for (let k = 1; k <= 3; k++) {
      shards.push(join(dir, `s${k}.${ext}`));
      const r = await cli([join(dir, '*.tar'), '-o', shards[k - 1]!, '--shard', `${k}/3`, ...TINY]);
      assert.ok(r.code === 0 || r.code === 2, r.stderr);
      // Whole archives: every member of an archive is in the same task's output.
      const lines = ext === 'npy' ? records(shards[k - 1]!.replace(/\.npy$/, '.manifest.jsonl')) : records(shards[k - 1]!);
      const archives = new Set(lines.map((l) => l.path.split('#')[0]));
      for (const a of archives) {
        const all = records(ext === 'npy' ? join(dir, 'full.manifest.jsonl') : join(dir, 'full.jsonl')).filter((l) => l.path.startsWith(`${a}#`));
        assert.equal(lines.filter((l) => l.path.startsWith(`${a}#`)).length, all.length, `${a} split across tasks`);
      }
    }
    const merged = await cli(['merge', ...shards, '-o', join(dir, `merged.${ext}`)]);
    assert.ok(merged.code === 0 || merged.code === 2, merged.stderr);
    assert.deepEqual(readFileSync(join(dir, `merged.${ext}`)), readFileSync(join(dir, `full.${ext}`)));
  }
  const keys = records(join(dir, 'merged.manifest.jsonl')).map((l) => l.key);
  assert.ok(keys.length > 0 && keys.every((k) => typeof k === 'string'), 'merge keeps the keys');
});

test('a hostile archive: absolute and .. names stay names, links are failures, devices and hidden names are skipped, nothing is written', async () => {
  const dir = tmp();
  const work = join(dir, 'a', 'b');
  mkdirSync(work, { recursive: true });
  const png = readFileSync(fixture('images', 'red-64x48.png'));
  writeFileSync(join(work, 'h.tar'), await tarOf([
    { header: { name: '/tmp/abs.png' }, body: png },
    { header: { name: '../../escape.png' }, body: png },
    { header: { name: 'soft.png', type: 'symlink', linkname: '/etc/passwd' } },
    { header: { name: 'hard.png', type: 'link', linkname: '/tmp/abs.png' } },
    { header: { name: 'null.png', type: 'character-device', devmajor: 1, devminor: 3 } },
    { header: { name: 'pipe.png', type: 'fifo' } },
    { header: { name: 'sub', type: 'directory' } },
    { header: { name: 'sub/._resource.png' }, body: Buffer.from('AppleDouble') },
    { header: { name: 'sub/x.json' }, body: Buffer.from('{}') },
  ]));
  const r = await cli(['h.tar', '-o', 'out.jsonl', ...TINY], { cwd: work });
  assert.equal(r.code, 2, r.stderr);
  const recs = records(join(work, 'out.jsonl'));
  assert.deepEqual(recs.map((l) => [l.path, l.type, l.reason]), [
    ['h.tar#/tmp/abs.png', 'row', undefined],
    ['h.tar#../../escape.png', 'row', undefined],
    ['h.tar#soft.png', 'failure', 'unreadable'],
    ['h.tar#hard.png', 'failure', 'unreadable'],
  ]);
  assert.match(recs[2].error, /^h\.tar#soft\.png: unreadable: a symbolic link member \(to '\/etc\/passwd'\): links in archives are not followed$/);
  assert.deepEqual(readdirSync(dir), ['a']);
  assert.deepEqual(readdirSync(join(dir, 'a')), ['b']);
  assert.deepEqual(readdirSync(work).sort(), ['h.tar', 'out.jsonl']);
});

test('a corrupt member and an archive cut short are recorded failures; the members before the cut are rows', async () => {
  const dir = tmp();
  const png = readFileSync(fixture('images', 'red-64x48.png'));
  const whole = await tarOf([
    { header: { name: 'a.png' }, body: png },
    { header: { name: 'bad.png' }, body: png.subarray(0, 60) },
    { header: { name: 'c.png' }, body: png },
    { header: { name: 'd.png' }, body: png },
  ]);
  // Cut inside c.png's body: a.png is a row, bad.png corrupt, c.png cut short, d.png lost with the rest.
  writeFileSync(join(dir, 'cut.tar'), whole.subarray(0, 512 * 3 + Math.ceil(png.length / 512) * 512 + 512 + 100));
  const r = await cli([join(dir, 'cut.tar'), '-o', join(dir, 'o.jsonl'), ...TINY]);
  assert.equal(r.code, 2, r.stderr);
  const recs = records(join(dir, 'o.jsonl'));
  assert.deepEqual(recs.map((l) => [l.path.slice(dir.length + 1), l.type]), [
    ['cut.tar#a.png', 'row'], ['cut.tar#bad.png', 'failure'], ['cut.tar#c.png', 'failure'], ['cut.tar', 'failure'],
  ]);
  assert.notEqual(recs[1].reason, 'truncated');
  assert.equal(recs[2].reason, 'truncated');
  assert.match(recs[3].error, /: truncated: archive cut short inside member 'c\.png': anything after it is lost/);
  // A file that is not a tar at all: one failure naming it.
  writeFileSync(join(dir, 'text.tar'), 'hello, not a tar\n'.repeat(64));
  const t = await cli([join(dir, 'text.tar'), '-o', join(dir, 't.jsonl'), ...TINY]);
  assert.equal(t.code, 2, t.stderr);
  assert.deepEqual(records(join(dir, 't.jsonl')).map((l) => [l.path, l.reason]), [[join(dir, 'text.tar'), 'corrupt']]);
});

/** A tar header (ustar) for a file member whose size field says `size` (base-256, as GNU tar writes sizes ≥ 8 GiB). */
function headerClaiming(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h[124] = 0x80;
  h.writeBigUInt64BE(BigInt(size), 128);
  h.write('00000000000\0', 136);
  h.write('0', 156);
  h.write('ustar\x0000', 257);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

test('a 10 GB member is a recorded too-large failure, never buffered (listing and run stay small)', async () => {
  const dir = tmp();
  const png = readFileSync(fixture('images', 'red-64x48.png'));
  const first = await tarOf([{ header: { name: 'ok.png' }, body: png }]);
  // ok.png, then a header that claims 10 GB with only 1 MB of its body there.
  writeFileSync(join(dir, 'big.tar'), Buffer.concat([first.subarray(0, 512 + Math.ceil(png.length / 512) * 512), headerClaiming('huge.png', 10 * 2 ** 30), Buffer.alloc(2 ** 20)]));
  const r = await cli([join(dir, 'big.tar'), '-o', join(dir, 'o.jsonl'), ...TINY]);
  assert.equal(r.code, 2, r.stderr);
  const recs = records(join(dir, 'o.jsonl'));
  assert.deepEqual(recs.map((l) => [l.path.slice(dir.length + 1), l.type, l.reason]), [
    ['big.tar#ok.png', 'row', undefined], ['big.tar#huge.png', 'failure', 'too-large'], ['big.tar', 'failure', 'truncated'],
  ]);
  assert.match(recs[1].error, /member of 10737418240 bytes; members over 268435456 bytes are not read/);
  // The cap itself, on a member that is there in full.
  const small = join(dir, 'small.tar');
  writeFileSync(small, await tarOf([{ header: { name: 'a.png' }, body: png }, { header: { name: 'b.png' }, body: Buffer.alloc(5000) }]));
  const listed = await listTar(small, IMAGE_EXTENSIONS, { maxMemberBytes: 4096 });
  assert.deepEqual(listed.map((e) => [e.path.slice(dir.length + 1), e.failure?.reason, e.member?.ordinal]), [['small.tar#a.png', undefined, 0], ['small.tar#b.png', 'too-large', undefined]]);
});

test('a tar bomb of empty entries: past the member cap the listing stops with one clear error', async () => {
  const dir = tmp();
  const bomb = join(dir, 'bomb.tar');
  writeFileSync(bomb, await tarOf(Array.from({ length: 1001 }, (_, i) => ({ header: { name: `${i}.jpg` } }))));
  await assert.rejects(listTar(bomb, IMAGE_EXTENSIONS, { maxMembers: 1000 }), (err: Error) =>
    err instanceof TarTooManyMembersError && err.message === `${bomb}: more than 1000 members in one archive; nothing written (split it into shards of fewer members)`);
  // Under the cap, empty members are inputs the decoder records as empty.
  const listed = await listTar(bomb, IMAGE_EXTENSIONS, { maxMembers: 1001 });
  assert.equal(listed.length, 1001);
});

test('--pca-dim over a tar: the sample reads some members, then the run reads the archive again from its start', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 's.tar'), await tarOf(imageMembers()));
  const r = await cli([join(dir, 's.tar'), '-o', join(dir, 'o.jsonl'), '--pca-dim', '1', '--sample', '3', ...TINY]);
  assert.equal(r.code, 2, r.stderr);
  const recs = records(join(dir, 'o.jsonl'));
  assert.deepEqual(recs.map((l) => l.type), ['row', 'row', 'row', 'failure', 'row']);
  assert.equal(recs[3].reason, 'unsupported-format');
});
