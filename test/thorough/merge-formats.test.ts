import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const TINY = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '-q'];
const tmp = () => tempDir('spp-merge-formats-');
const cache = tmp();
/** The CLI with its caches in a temp folder, never the user's. */
const cli = (args: string[], cwd?: string) => runCli(args, { cwd, env: { HOME: cache, XDG_CACHE_HOME: join(cache, 'cache'), SPP_EXTRACT_CACHE: join(cache, 'cache') } });
const bytes = (p: string) => readFileSync(p);

let images = '';
before(async () => {
  images = tmp();
  // Enough images that both shards of two get several; one broken file, so failures are merged too.
  await Promise.all(Array.from({ length: 12 }, (_, i) =>
    sharp({ create: { width: 20 + i * 3, height: 30 - i, channels: 3, background: { r: i * 20, g: 255 - i * 20, b: (i * 77) % 256 } } })
      .png().toFile(join(images, `im-${String(i).padStart(2, '0')}.png`))));
  writeFileSync(join(images, 'im-05-broken.png'), 'not a png');
});

/** A single run over all images, and shards 1/2 and 2/2 of the same run merged (given in reverse): their paths. */
async function singleAndMerged(ext: string, extra: string[] = []) {
  const dir = tmp();
  const single = join(dir, `all.${ext}`);
  const s = await cli([images, '-o', single, ...TINY, ...extra]);
  assert.equal(s.code, 2, s.stderr);
  for (const k of [1, 2]) {
    const r = await cli([images, '-o', join(dir, `part-{shard}.${ext}`), '--shard', `${k}/2`, ...TINY, ...extra]);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
  }
  const merged = join(dir, `merged.${ext}`);
  const m = await cli(['merge', join(dir, `part-2.${ext}`), join(dir, `part-1.${ext}`), '-o', merged]);
  return { dir, single, merged, m };
}

for (const ext of ['jsonl', 'json', 'npy']) {
  test(`--shard 1/2 + 2/2 as .${ext}, merged: byte for byte the single run's .${ext}`, async () => {
    const { dir, single, merged, m } = await singleAndMerged(ext);
    assert.equal(m.code, 2, m.stderr); // the broken file is a recorded failure
    assert.match(m.stderr, new RegExp(`merged 2 shards: 12 rows, 1 failed → .*merged\\.${ext}\\n$`));
    assert.ok(bytes(merged).equals(bytes(single)), `merged .${ext} equals the single run`);
    if (ext === 'npy') assert.ok(bytes(join(dir, 'merged.manifest.jsonl')).equals(bytes(join(dir, 'all.manifest.jsonl'))));
    assert.ok(!readdirSync(dir).some((f) => f.includes('partial') || f.includes('journal')), 'no temp files left');
  });
}

test('region runs (--grid 2x2: several records an image) merge byte for byte as .jsonl and .json', async () => {
  for (const ext of ['jsonl', 'json']) {
    const { single, merged, m } = await singleAndMerged(ext, ['--grid', '2x2']);
    assert.equal(m.code, 2, m.stderr);
    assert.ok(bytes(merged).equals(bytes(single)), `--grid merged .${ext} equals the single run`);
  }
});

test('shards with nothing, with rows only, with failures only (.json: no items, no failures) merge byte for byte', async () => {
  const dir = tmp();
  // Relative names, so the shard of each is known: of 3, red and noise go to 2, not-an-image to 3, none to 1.
  const names = ['red-64x48.png', 'not-an-image.jpg', 'noise-100x70.jpg'];
  for (const n of names) copyFileSync(fixture('images', n), join(dir, n));
  for (const ext of ['json', 'jsonl']) {
    assert.equal((await cli([...names, '-o', `all.${ext}`, ...TINY], dir)).code, 2);
    for (const k of [1, 2, 3]) await cli([...names, '-o', `part-{shard}.${ext}`, '--shard', `${k}/3`, ...TINY], dir);
    const rows = [1, 2, 3].map((k) => readFileSync(join(dir, `part-${k}.${ext}`), 'utf8').match(/"rows":(\d+),"failures":(\d+),"complete":true\}\}?\n$/)!.slice(1).join('+'));
    assert.deepEqual(rows, ['0+0', '2+0', '0+1'], 'the three kinds of shard');
    const m = await cli(['merge', `part-3.${ext}`, `part-1.${ext}`, `part-2.${ext}`, '-o', `merged.${ext}`], dir);
    assert.equal(m.code, 2, m.stderr);
    assert.ok(bytes(join(dir, `merged.${ext}`)).equals(bytes(join(dir, `all.${ext}`))), `.${ext}`);
  }
});

test('merge refuses, before writing anything: mixed formats, -o in another format, an incomplete or edited .jsonl / .json shard', async () => {
  const dir = tmp();
  for (const [k, ext] of [[1, 'jsonl'], [2, 'jsonl'], [1, 'json'], [2, 'json']] as const) {
    const r = await cli([images, '-o', join(dir, `p-${k}.${ext}`), '--shard', `${k}/2`, ...TINY]);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
  }
  const refused = async (args: string[], message: RegExp) => {
    const listing = readdirSync(dir).sort();
    const r = await cli(['merge', ...args]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.deepEqual(readdirSync(dir).sort(), listing, 'nothing written');
  };
  const p = (name: string) => join(dir, name);
  await refused([p('p-1.jsonl'), p('p-2.json'), '-o', p('m.jsonl')], /p-1\.jsonl is \.jsonl but .*p-2\.json is \.json: the shards of one run share one format/);
  await refused([p('p-1.jsonl'), p('p-2.jsonl'), '-o', p('m.npy')], /the shards are \.jsonl, so -o must be \.jsonl too, got .*m\.npy/);
  await refused([p('p-1.json'), p('p-2.json'), '-o', p('m.jsonl')], /the shards are \.json, so -o must be \.json too/);

  // A shard whose run was cut short (no summary line yet); one whose descriptor was edited.
  const text = readFileSync(p('p-2.jsonl'), 'utf8');
  const lines = text.trimEnd().split('\n');
  writeFileSync(p('cut-2.jsonl'), lines.slice(0, -1).join('\n') + '\n');
  await refused([p('p-1.jsonl'), p('cut-2.jsonl'), '-o', p('m.jsonl')], /cut-2\.jsonl is incomplete \(no summary line\); finish it with --resume first/);
  const row = lines.findIndex((l) => l.includes('"type":"row"'));
  const edited = lines.map((l, i) => (i === row ? l.replace(/"descriptor":\[[^,\]]+/, '"descriptor":[0.1') : l));
  writeFileSync(p('edit-2.jsonl'), edited.join('\n') + '\n');
  await refused([p('p-1.jsonl'), p('edit-2.jsonl'), '-o', p('m.jsonl')], new RegExp(`edit-2\\.jsonl line ${row + 1}: "descriptor" value 0 is 0\\.1, not a float32 value a run writes`));

  // .json: its layout, one record a line, checked as it is read.
  const json = readFileSync(p('p-2.json'), 'utf8').split('\n');
  writeFileSync(p('bad-2.json'), [json[0], '{"oops":1}', ...json.slice(1)].join('\n'));
  await refused([p('p-1.json'), p('bad-2.json'), '-o', p('m.json')], /bad-2\.json line 2: "index" is missing, expected a non-negative integer/);
  writeFileSync(p('short-2.json'), json.slice(0, 2).join('\n') + '\n');
  await refused([p('p-1.json'), p('short-2.json'), '-o', p('m.json')], /short-2\.json is incomplete \(it ends before its summary\)/);
  writeFileSync(p('foreign-2.json'), JSON.stringify({ tool: 'other', items: [] }) + '\n');
  await refused([p('p-1.json'), p('foreign-2.json'), '-o', p('m.json')], /foreign-2\.json is not an spp-extract \.json output/);
});
