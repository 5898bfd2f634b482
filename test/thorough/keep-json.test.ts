/**
 * --keep-json: a tar member's sidecar `key.json` travels in its record as `json`. Expected values
 * are the sidecar files' own JSON.parse, never the tool's.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { IMAGE_EXTENSIONS } from '../../src/inputs/expand.js';
import { createHash } from 'node:crypto';
import { TAR_SIDECAR_MAX_BYTES, UNREAD_SIDECAR, listTar, type TarMemberRef } from '../../src/inputs/tar.js';
import { runAndSignal, runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { fixture } from '../helpers/shared.js';
import { tarOf, type Member as TarMember } from '../helpers/tar.js';
import { tempDir } from '../helpers/tmp.js';

const TINY = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '-q'];
const tmp = () => tempDir('spp-keep-json-');
/** The CLI with its caches in a temp folder, never the user's. */
const cli = (args: string[]) => {
  const home = tmp();
  return runCli(args, { env: { HOME: home, XDG_CACHE_HOME: join(home, 'cache'), SPP_EXTRACT_CACHE: join(home, 'cache') } });
};

const image = (name: string) => readFileSync(fixture('images', name));
const text = (s: string) => Buffer.from(s, 'utf8');
const member = (name: string, body: Buffer): TarMember => ({ header: { name }, body });

/** `levels` objects nested in each other: the deepest sidecar kept has 28 (a record line holding it stays readable). */
const nested = (levels: number) => JSON.stringify(Array.from({ length: levels - 1 }).reduce<object>((v) => ({ d: v }), { leaf: levels }));
const UNICODE = JSON.stringify({ caption: 'Ünïcødé — 日本語 🐱 "quoted" \\ back', url: 'https://example.org/h?q=é', nested: { labels: ['a', 'b'], n: 1.5 } });
/** Every case of one sample: the sidecar after the image (with a .txt between), before it, missing, broken, too big, not an object, unicode. */
const SIDECARS: Record<string, string> = {
  'a.json': JSON.stringify({ url: 'https://example.org/a.jpg', caption: 'after, a .txt between', width: 100 }),
  'b.json': JSON.stringify({ url: 'https://example.org/b.png', caption: 'before' }),
  'd.json': '{"url": "https://example.org/d.png", oops',
  'e.json': JSON.stringify({ pad: 'x'.repeat(TAR_SIDECAR_MAX_BYTES) }),
  'f.json': JSON.stringify(['not', 'an', 'object']),
  'g.json': JSON.stringify({ url: 'https://example.org/g.jpg', caption: 'the image does not decode' }),
  'h.json': UNICODE,
  'i.json': nested(28),
  'j.json': nested(29),
  'k.json': '{"bad utf-8": "\xff"}',
};
const SAMPLES: TarMember[] = [
  member('a.jpg', image('noise-100x70.jpg')), member('a.txt', text('a caption')), member('a.json', text(SIDECARS['a.json'])),
  member('b.json', text(SIDECARS['b.json'])), member('b.png', image('red-64x48.png')),
  member('c.webp', image('nested/gray-100x70.webp')), member('c.txt', text('no sidecar')),
  member('d.png', image('red-64x48.png')), member('d.json', text(SIDECARS['d.json'])),
  member('e.png', image('red-64x48.png')), member('e.json', text(SIDECARS['e.json'])),
  member('f.png', image('red-64x48.png')), member('f.json', text(SIDECARS['f.json'])),
  member('g.jpg', image('not-an-image.jpg')), member('g.json', text(SIDECARS['g.json'])),
  // Two images of one key (a collision), both before their sidecar: both get it.
  member('h.png', image('nested/blue-alpha-40x90.png')), member('h.webp', image('nested/gray-100x70.webp')), member('h.json', text(SIDECARS['h.json'])),
  member('i.png', image('red-64x48.png')), member('i.json', text(SIDECARS['i.json'])),
  member('j.png', image('red-64x48.png')), member('j.json', text(SIDECARS['j.json'])),
  member('k.png', image('red-64x48.png')), member('k.json', Buffer.from(SIDECARS['k.json']!, 'latin1')),
];
/** What each image's record should carry: the sidecar's own parse where it is an object of at most 1 MiB. */
const EXPECTED: Record<string, unknown> = {
  'a.jpg': JSON.parse(SIDECARS['a.json']!), 'b.png': JSON.parse(SIDECARS['b.json']!), 'c.webp': undefined, 'd.png': undefined, 'e.png': undefined,
  'f.png': undefined, 'g.jpg': JSON.parse(SIDECARS['g.json']!), 'h.png': JSON.parse(UNICODE), 'h.webp': JSON.parse(UNICODE),
  'i.png': JSON.parse(SIDECARS['i.json']!), 'j.png': undefined, 'k.png': undefined,
};

/** Records (rows and failures) of an output of any format, in input order. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function recordsOf(out: string): any[] {
  if (out.endsWith('.npy')) return readJsonl(out.replace(/\.npy$/, '.manifest.jsonl')).filter((l) => l.type === 'row' || l.type === 'failure');
  if (out.endsWith('.jsonl')) return readJsonl(out).filter((l) => l.type === 'row' || l.type === 'failure');
  const doc = JSON.parse(readFileSync(out, 'utf8'));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return [...doc.items, ...doc.failures].sort((x: any, y: any) => x.index - y.index);
}

test('--keep-json: each image\'s record carries its sample\'s key.json (before or after it), in .npy, .jsonl and .json; failures keep it; bad sidecars are a warning each', async () => {
  const dir = tmp();
  const archive = join(dir, '00000.tar');
  writeFileSync(archive, await tarOf(SAMPLES));
  // A loose file among the inputs: no sidecar, no field.
  const loose = fixture('images', 'red-64x48.png');
  for (const ext of ['npy', 'jsonl', 'json']) {
    const out = join(dir, `out.${ext}`);
    const r = await cli([archive, loose, '-o', out, '--keep-json', ...TINY]);
    assert.equal(r.code, 2, r.stderr); // g.jpg does not decode
    const recs = recordsOf(out);
    assert.deepEqual(recs.map((l) => l.path), [...Object.keys(EXPECTED).map((n) => `${archive}#${n}`), loose]);
    for (const rec of recs.slice(0, -1)) {
      const name = rec.path.split('#')[1];
      assert.deepEqual(rec.json, EXPECTED[name], `${ext}: ${name}`);
      assert.equal('json' in rec, EXPECTED[name] !== undefined, `${ext}: ${name} has a json field only when kept`);
    }
    assert.equal(recs.at(-1).json, undefined, 'a loose file has no json');
    const failed = recs.find((l) => l.path.endsWith('#g.jpg'));
    assert.notEqual(failed.type, 'row');
    assert.ok(failed.reason, 'g.jpg is a failure that still names its URL');
    // One warning line per sidecar not kept, naming ARCHIVE#key.json and why.
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('spp-extract: warning:'));
    assert.equal(warnings.length, 5, r.stderr);
    assert.match(warnings.find((w) => w.includes(`${archive}#d.json`)) ?? '', /not JSON/);
    assert.match(warnings.find((w) => w.includes(`${archive}#e.json`)) ?? '', new RegExp(`${Buffer.byteLength(SIDECARS['e.json']!)} bytes, over the ${TAR_SIDECAR_MAX_BYTES}`));
    assert.match(warnings.find((w) => w.includes(`${archive}#f.json`)) ?? '', /a list, not a JSON object/);
    assert.match(warnings.find((w) => w.includes(`${archive}#j.json`)) ?? '', /nested more than 28 levels deep/);
    assert.match(warnings.find((w) => w.includes(`${archive}#k.json`)) ?? '', /not UTF-8 text/);
    assert.ok(!r.stderr.includes('#c.'), 'a sample without a sidecar is no warning');
  }
  // The unicode sidecar is written as readable UTF-8, not escaped away.
  assert.ok(readFileSync(join(dir, 'out.jsonl'), 'utf8').includes('日本語 🐱'));
  // The header says so: resume, --update and merge must not mix rows with and without it.
  assert.equal(readJsonl(join(dir, 'out.jsonl'))[0].keepJson, true);
});

test('without --keep-json the same archive gives no json field and no keepJson in the header; descriptors are the same with it', async () => {
  const dir = tmp();
  const archive = join(dir, '00000.tar');
  writeFileSync(archive, await tarOf(SAMPLES));
  const plain = await cli([archive, '-o', join(dir, 'plain.npy'), ...TINY]);
  assert.equal(plain.code, 2, plain.stderr);
  assert.equal(plain.stderr.includes('warning'), false, plain.stderr);
  const lines = readJsonl(join(dir, 'plain.manifest.jsonl'));
  assert.equal('keepJson' in lines[0], false);
  assert.ok(lines.every((l) => !('json' in l)));
  const kept = await cli([archive, '-o', join(dir, 'kept.npy'), '--keep-json', ...TINY]);
  assert.equal(kept.code, 2, kept.stderr);
  assert.deepEqual(readFileSync(join(dir, 'kept.npy')), readFileSync(join(dir, 'plain.npy')));
  // The manifests differ only by the header field and the json fields.
  const strip = (f: string) => readJsonl(f).map(({ json: _j, keepJson: _k, versions: _v, ...rest }) => rest);
  assert.deepEqual(strip(join(dir, 'kept.manifest.jsonl')), strip(join(dir, 'plain.manifest.jsonl')));
});

test('--keep-json with no .tar input: one warning, and the run is otherwise as without it', async () => {
  const dir = tmp();
  const r = await cli([fixture('images', 'red-64x48.png'), '-o', join(dir, 'o.jsonl'), '--keep-json', ...TINY]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^spp-extract: warning: --keep-json: no input is a \.tar archive/m);
  assert.ok(readJsonl(join(dir, 'o.jsonl')).every((l) => !('json' in l)));
});

test('--keep-json with --shard: merging the shards keeps json and equals one run byte for byte; a shard without it is refused', async () => {
  const dir = tmp();
  writeFileSync(join(dir, '00000.tar'), await tarOf(SAMPLES.slice(0, 7)));
  writeFileSync(join(dir, '00001.tar'), await tarOf(SAMPLES.slice(15)));
  for (const ext of ['npy', 'jsonl', 'json']) {
    const full = await cli([join(dir, '*.tar'), '-o', join(dir, `full.${ext}`), '--keep-json', ...TINY]);
    assert.equal(full.code, 0, full.stderr);
    const shards = [1, 2].map((k) => join(dir, `s${k}.${ext}`));
    for (const [i, s] of shards.entries()) {
      const r = await cli([join(dir, '*.tar'), '-o', s, '--shard', `${i + 1}/2`, '--keep-json', ...TINY]);
      assert.equal(r.code, 0, r.stderr);
    }
    const merged = await cli(['merge', ...shards, '-o', join(dir, `merged.${ext}`)]);
    assert.equal(merged.code, 0, merged.stderr);
    assert.deepEqual(readFileSync(join(dir, `merged.${ext}`)), readFileSync(join(dir, `full.${ext}`)));
    const json = recordsOf(join(dir, `merged.${ext}`)).map((l) => l.json);
    // The 28-deep sidecar (i.json) survives the shard readers' depth check.
    assert.deepEqual(json, ['a.jpg', 'b.png', 'c.webp', 'h.png', 'h.webp', 'i.png', 'j.png', 'k.png'].map((n) => EXPECTED[n]));
    // Shard 2 again without --keep-json: merge names the option that differs.
    const plain = await cli([join(dir, '*.tar'), '-o', shards[1]!, '--shard', '2/2', '--force', ...TINY]);
    assert.equal(plain.code, 0, plain.stderr);
    const mixed = await cli(['merge', ...shards, '-o', join(dir, `mixed.${ext}`)]);
    assert.notEqual(mixed.code, 0);
    assert.match(mixed.stderr, /--keep-json: true before, undefined now|--keep-json: undefined before, true now/);
  }
});

test('the reader: two images before their sidecar both get it, a later member of the same key is another sample; an earlier member reads the archive again', async () => {
  const dir = tmp();
  const archive = join(dir, 's.tar');
  writeFileSync(archive, await tarOf([
    member('x.png', text('png-x')), member('x.jpg', text('jpg-x')), member('x.txt', text('t')), member('x.json', text('{"k":"x"}')),
    member('y.json', text('{"k":"y"}')), member('y.png', text('png-y')),
    // Same key elsewhere in the archive: another sample, WebDataset's grouping.
    member('x.webp', text('webp-x2')),
  ]));
  const listed = await listTar(archive, IMAGE_EXTENSIONS, { keepJson: true });
  const refs = listed.map((l) => l.member!);
  assert.deepEqual(refs.map((m) => m.name), ['x.png', 'x.jpg', 'y.png', 'x.webp']);
  const reader = refs[0]!.archive;
  const read = (i: number) => reader.readSample(refs[i]!, listed[i]!.path).then((s) => [s.bytes.toString(), s.json]);
  assert.deepEqual(await Promise.all([0, 1, 2, 3].map(read)), [
    ['png-x', { k: 'x' }], ['jpg-x', { k: 'x' }], ['png-y', { k: 'y' }], ['webp-x2', undefined],
  ]);
  // After the last image the archive is closed; asking again reads it from its start.
  assert.deepEqual(await read(1), ['jpg-x', { k: 'x' }]);
  assert.deepEqual(await read(2), ['png-y', { k: 'y' }]);
  // Without --keep-json the listing points at no sidecar.
  assert.ok((await listTar(archive, IMAGE_EXTENSIONS)).every((l) => l.member!.sidecar === undefined));
});

test('failures the listing records (a link member, a member too large) keep their sample\'s sidecar and key; the member itself is never read', async () => {
  const dir = tmp();
  const archive = join(dir, 'l.tar');
  const link = JSON.stringify({ url: 'https://example.org/s.png' });
  const big = JSON.stringify({ url: 'https://example.org/big.png' });
  writeFileSync(archive, await tarOf([
    { header: { name: 's.png', type: 'symlink', linkname: '/etc/passwd' } }, member('s.json', text(link)),
    member('big.json', text(big)), member('big.png', image('red-64x48.png')),
    member('ok.png', image('red-64x48.png')),
  ]));
  const r = await cli([archive, '-o', join(dir, 'o.jsonl'), '--keep-json', ...TINY]);
  assert.equal(r.code, 2, r.stderr);
  const recs = recordsOf(join(dir, 'o.jsonl'));
  assert.deepEqual(recs.map((l) => [l.path.split('#')[1], l.type, l.key, l.json]), [
    ['s.png', 'failure', 's', JSON.parse(link)], ['big.png', 'row', 'big', JSON.parse(big)], ['ok.png', 'row', 'ok', undefined],
  ]);
  // A member over the size limit (the limit lowered here: the CLI's is 256 MiB) is listed as a failure that still points at its sidecar.
  const listed = await listTar(archive, IMAGE_EXTENSIONS, { keepJson: true, maxMemberBytes: 100 });
  const tooLarge = listed.find((l) => l.path.endsWith('#big.png'))!;
  assert.equal(tooLarge.failure?.reason, 'too-large');
  assert.equal(tooLarge.member, undefined);
  assert.deepEqual(await tooLarge.sample!.archive.readSidecar(tooLarge.sample!, tooLarge.path), { json: JSON.parse(big) });
  // Without --keep-json a listing failure has no sample.
  assert.ok((await listTar(archive, IMAGE_EXTENSIONS, { maxMemberBytes: 100 })).every((l) => l.sample === undefined));
});

test('more images of one key before its sidecar than the reader holds: those get no json and a warning naming the sidecar; images after it still get it', async () => {
  const dir = tmp();
  const archive = join(dir, 'many.tar');
  const before = Array.from({ length: 1026 }, (_, i) => member(`k.${i}.png`, text(`img ${i}`)));
  writeFileSync(archive, await tarOf([...before, member('k.json', text('{"n":1}')), member('k.after.png', text('after'))]));
  const listed = await listTar(archive, IMAGE_EXTENSIONS, { keepJson: true });
  assert.equal(listed.length, 1027);
  const refs = listed.map((l) => l.member as TarMemberRef);
  const first = await refs[0]!.archive.readSample(refs[0]!, listed[0]!.path);
  assert.equal(first.json, undefined);
  assert.match(first.warning ?? '', new RegExp(`${archive.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}#k\\.json: 1026 images of its sample .* not kept for them`));
  const last = await refs[1026]!.archive.readSample(refs[1026]!, listed[1026]!.path);
  assert.deepEqual([last.bytes.toString(), last.json], ['after', { n: 1 }]);
});

test('--keep-json --resume after a kill equals an uninterrupted run byte for byte; a resume without --keep-json is refused; --update --keep-json then finds it up to date', async () => {
  const dir = tmp();
  const archive = join(dir, '00000.tar');
  const png = image('red-64x48.png');
  // 200 samples, the sidecar before the image in odd ones and after it in even ones.
  const samples = Array.from({ length: 200 }, (_, i) => {
    const key = String(i).padStart(4, '0');
    const pair = [member(`${key}.png`, png), member(`${key}.json`, text(JSON.stringify({ i, caption: `sample ${i} ✓` })))];
    return i % 2 ? pair.reverse() : pair;
  });
  writeFileSync(archive, await tarOf(samples.flat()));
  const args = [archive, '-o', join(dir, 'feats.jsonl'), '--keep-json', '--cache-dir', join(dir, 'cache'), ...TINY];
  const killed = await runAndSignal([...args, '--decode-ahead', '1'], join(dir, '.feats.jsonl.partial'), 8, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL', `the run ended before the kill: ${killed.stderr}`);
  const withoutIt = await cli(args.filter((a) => a !== '--keep-json').concat('--resume'));
  assert.equal(withoutIt.code, 1, withoutIt.stderr);
  assert.match(withoutIt.stderr, /--keep-json: true before, undefined now/);
  const resumed = await cli([...args, '--resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming .*: \d+ of 200 inputs already done/);
  const fresh = await cli([archive, '-o', join(dir, 'fresh.jsonl'), '--keep-json', ...TINY]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.ok(readFileSync(join(dir, 'feats.jsonl')).equals(readFileSync(join(dir, 'fresh.jsonl'))), 'resumed equals fresh, byte for byte');
  assert.deepEqual(readJsonl(join(dir, 'feats.jsonl')).filter((l) => l.type === 'row').map((l) => l.json),
    samples.map((pair) => JSON.parse(pair.find((m) => m.header.name.endsWith('.json'))!.body!.toString())));
  const update = await cli([...args, '--update']);
  assert.equal(update.code, 0, update.stderr);
  assert.match(update.stderr, /is up to date \(200 rows reused\); nothing to do/);
});

test('the reader holds the images it passes on the way to their sidecar: the second image of a sample is not read from the archive again', async () => {
  const dir = tmp();
  const archive = join(dir, 'k.tar');
  writeFileSync(archive, await tarOf([member('k.png', text('png-k')), member('k.jpg', text('jpg-k')), member('k.json', text('{"k":1}'))]));
  const listed = await listTar(archive, IMAGE_EXTENSIONS, { keepJson: true });
  const [a, b] = listed.map((l) => l.member as TarMemberRef);
  const first = await a!.archive.readSample(a!, listed[0]!.path);
  assert.deepEqual([first.bytes.toString(), first.json], ['png-k', { k: 1 }]);
  // The archive is gone now: what the reader passed must come from what it held.
  writeFileSync(archive, Buffer.alloc(0));
  const second = await b!.archive.readSample(b!, listed[1]!.path);
  assert.deepEqual([second.bytes.toString(), second.json], ['jpg-k', { k: 1 }]);
});

/** The identity --update compares for a record's json: SHA-256 of the text a record holds for it. */
const identityOf = (json: unknown) => (json === undefined ? undefined : createHash('sha256').update(JSON.stringify(json)).digest('hex'));

test('listing to hash with --keep-json: each image member has the identity of the json a run records for it (none for a missing, broken, too big, not-object, too deep or not UTF-8 sidecar)', async () => {
  const dir = tmp();
  const archive = join(dir, '00000.tar');
  writeFileSync(archive, await tarOf(SAMPLES));
  const listed = await listTar(archive, IMAGE_EXTENSIONS, { keepJson: true, hash: true });
  assert.deepEqual(listed.map((l) => l.path.split('#')[1]), Object.keys(EXPECTED));
  for (const l of listed) {
    const name = l.path.split('#')[1]!;
    assert.equal(l.member!.jsonSha256, identityOf(EXPECTED[name]), name);
  }
  // Not hashing (a fresh run): the sidecars are left for the run to read.
  assert.ok((await listTar(archive, IMAGE_EXTENSIONS, { keepJson: true })).every((l) => l.member!.jsonSha256 === undefined));
  // Images past what the reader holds on the way to their sidecar get none; the one after it does.
  const many = join(dir, 'many.tar');
  writeFileSync(many, await tarOf([...Array.from({ length: 1026 }, (_, i) => member(`k.${i}.png`, text(`img ${i}`))), member('k.json', text('{"n":1}')), member('k.after.png', text('after'))]));
  const held = await listTar(many, IMAGE_EXTENSIONS, { keepJson: true, hash: true });
  assert.equal(held[0]!.member!.jsonSha256, undefined);
  assert.equal(held.at(-1)!.member!.jsonSha256, identityOf({ n: 1 }));
  // An archive cut inside the sidecar: its image's identity matches no stored record's.
  const whole = await tarOf([member('m.png', image('red-64x48.png')), member('m.json', text(JSON.stringify({ pad: 'y'.repeat(4000) })))]);
  const cut = join(dir, 'cut.tar');
  writeFileSync(cut, whole.subarray(0, whole.length - 1024 - 2048));
  const [m] = await listTar(cut, IMAGE_EXTENSIONS, { keepJson: true, hash: true });
  assert.equal(m!.member!.jsonSha256, UNREAD_SIDECAR);
});
