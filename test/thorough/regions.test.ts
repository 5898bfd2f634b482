import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { parseNpyHeader } from '../../src/output/npy.js';
import { runAndSignal, runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const MODEL = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];
const DIM = 126;
/** Enough images that a run killed after 100 journal records (3 boxes each) is still going. */
const N_IMAGES = 120;
const tmp = () => tempDir('spp-regions-');
const bytes = (p: string) => readFileSync(p);
const manifestOf = (npy: string) => npy.replace(/\.npy$/, '.manifest.jsonl');

interface Img { path: string; width: number; height: number }
let dir = '';
let images: Img[] = [];
let boxesJsonl = '';
let boxesCsv = '';
const ref = { npy: '', jsonl: '', json: '', plain: '' };

/** Deterministic boxes for image i: the whole image, a part, and (for some) an empty or outside box. */
function boxesOf(i: number, { width: w, height: h }: Img): { box: number[]; label: string }[] {
  const part = [Math.floor(w / 5), Math.floor(h / 4), Math.floor((3 * w) / 4) + 0.5, h - 1];
  const third = i % 10 === 3 ? [4, 4, 4, 9] : i % 10 === 7 ? [w + 5, 0, w + 10, 5] : [0, Math.floor(h / 2), Math.floor(w / 2), h];
  return [{ box: [0, 0, w, h], label: 'whole' }, { box: part, label: `part ${i}` }, { box: third, label: 'third, "quoted"' }];
}

before(async () => {
  dir = tmp();
  images = Array.from({ length: N_IMAGES }, (_, i) => ({ path: join(dir, `img-${String(i).padStart(4, '0')}.png`), width: 30 + (i % 19), height: 20 + ((i * 7) % 29) }));
  await Promise.all(images.map((img, i) =>
    sharp({ create: { width: img.width, height: img.height, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 13) % 256 } } })
      .composite([{ input: { create: { width: 8, height: 6, channels: 3, background: { r: 255 - ((i * 5) % 256), g: 20, b: 200 } } }, left: i % 20, top: i % 13 }])
      .png()
      .toFile(img.path)));
  writeFileSync(join(dir, 'broken.png'), 'not a png');
  const listed = [...images.slice(0, 50), { path: join(dir, 'broken.png'), width: 10, height: 10 }, ...images.slice(50)];
  // JSONL with absolute paths; CSV with paths relative to its own folder, one box a line.
  boxesJsonl = join(dir, 'boxes.jsonl');
  writeFileSync(boxesJsonl, listed.map((img, i) => {
    const b = boxesOf(i, img);
    return JSON.stringify({ path: img.path, boxes: b.map((x) => x.box), labels: b.map((x) => x.label) });
  }).join('\n') + '\n');
  const sub = join(dir, 'csv');
  boxesCsv = join(sub, 'boxes.csv');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(sub);
  const csvLines = listed.flatMap((img, i) => boxesOf(i, img).map((b) => `${relative(sub, img.path)},${b.box.join(',')},"${b.label.replaceAll('"', '""')}"`));
  writeFileSync(boxesCsv, `path,x0,y0,x1,y1,label\n${csvLines.join('\n')}\n`);

  const out = tmp();
  Object.assign(ref, { npy: join(out, 'r.npy'), jsonl: join(out, 'r.jsonl'), json: join(out, 'r.json'), plain: join(out, 'plain.npy') });
  const runs = await Promise.all([
    runCli(['--boxes', boxesJsonl, '-o', ref.npy, ...MODEL, '-q']),
    runCli(['--boxes', boxesJsonl, '-o', ref.jsonl, ...MODEL, '-q']),
    runCli(['--boxes', boxesJsonl, '-o', ref.json, ...MODEL, '-q']),
    runCli([...listed.map((i) => i.path), '-o', ref.plain, ...MODEL, '-q']),
  ]);
  for (const r of runs) assert.equal(r.code, 2, r.stderr); // the broken file, the bad boxes
});

/** Float32 rows of an .npy written by us (header 128 bytes, <f4). */
function npyRows(path: string): Float32Array[] {
  const b = bytes(path);
  const [n, d] = parseNpyHeader(b).shape;
  const all = new Float32Array(b.buffer.slice(b.byteOffset + 128, b.byteOffset + 128 + n * d * 4));
  return Array.from({ length: n }, (_, i) => all.subarray(i * d, (i + 1) * d));
}

test('--boxes: a row per box in file order, a failure per bad box, one failure carrying its box count per bad image; JSONL and CSV files agree', async () => {
  const lines = readJsonl(manifestOf(ref.npy));
  const body = lines.slice(1, -1);
  const rows = body.filter((l) => l.type === 'row');
  const failures = body.filter((l) => l.type === 'failure');
  const badBoxes = 2 * 12; // i % 10 ∈ {3, 7} over 121 listed images
  assert.equal(rows.length, N_IMAGES * 3 - badBoxes);
  assert.deepEqual(failures.map((f) => f.reason).sort(), [...Array(12).fill('box-empty'), ...Array(12).fill('box-outside'), 'unsupported-format'].sort());
  const broken = failures.find((f) => f.box_index === undefined)!;
  assert.equal(broken.boxes, 3, 'the broken image takes its 3 boxes with it');
  assert.equal(broken.index, 50);
  assert.deepEqual(lines.at(-1), { type: 'summary', rows: rows.length, failures: 25, complete: true });
  assert.equal(lines[0].regions, 'boxes');
  assert.equal(lines[0].boxFormat, 'xyxy');
  // Order: images in file order, boxes in box order; box and label as given.
  const keys = body.map((l) => [l.index, l.box_index ?? -1]);
  assert.deepEqual(keys, [...keys].sort((a, b) => a[0] - b[0] || a[1] - b[1]));
  const first = rows[1];
  assert.deepEqual([first.box_index, first.label], [1, 'part 0']);
  assert.deepEqual(first.box, boxesOf(0, images[0])[1].box);
  assert.deepEqual(rows.map((r) => r.row), rows.map((_, i) => i));
  assert.deepEqual(parseNpyHeader(bytes(ref.npy)).shape, [rows.length, DIM]);

  const csvOut = join(tmp(), 'c.npy');
  const csv = await runCli(['--boxes', boxesCsv, '-o', csvOut, ...MODEL, '-q']);
  assert.equal(csv.code, 2, csv.stderr);
  assert.ok(bytes(csvOut).equals(bytes(ref.npy)), 'CSV (relative paths) gives the same .npy');
  assert.deepEqual(readJsonl(manifestOf(csvOut)), lines, 'and the same manifest');
});

test('--boxes: the whole-image box equals the image\'s own row bit for bit; .jsonl and .json carry the same descriptors and fields', () => {
  const plain = npyRows(ref.plain);
  const plainIndex = readJsonl(manifestOf(ref.plain)).filter((l) => l.type === 'row').map((l) => l.index as number);
  const regions = npyRows(ref.npy);
  const manifest = readJsonl(manifestOf(ref.npy)).filter((l) => l.type === 'row');
  let checked = 0;
  manifest.forEach((l, r) => {
    if (l.box_index !== 0) return;
    const p = plainIndex.indexOf(l.index);
    assert.deepEqual(regions[r], plain[p], `image ${l.index}`);
    checked++;
  });
  assert.equal(checked, N_IMAGES);
  const jsonl = readJsonl(ref.jsonl).filter((l) => l.type === 'row');
  const json = JSON.parse(readFileSync(ref.json, 'utf8'));
  assert.equal(jsonl.length, regions.length);
  jsonl.forEach((l, r) => {
    assert.deepEqual(Float32Array.from(l.descriptor), regions[r], `jsonl row ${r}`);
    const { descriptor: _d, type: _t, ...fields } = l;
    const { row: _r, type: _t2, ...m } = manifest[r];
    assert.deepEqual(fields, m);
    const { descriptor: _j, ...item } = json.items[r];
    assert.deepEqual(item, m);
  });
  assert.equal(json.failures.length, 25);
  assert.equal(json.regions, 'boxes');
});

test('--boxes: SIGKILL mid-image, then --resume: .npy, manifest and .jsonl equal the uninterrupted runs byte for byte', async () => {
  for (const format of ['npy', 'jsonl'] as const) {
    const out = join(tmp(), `run.${format}`);
    const journal = format === 'npy' ? join(out, '..', '.run.manifest.jsonl.partial') : join(out, '..', '.run.jsonl.partial');
    // 3 records per image: most kills land inside an image, whose records are then redone.
    const killed = await runAndSignal(['--boxes', boxesJsonl, '-o', out, ...MODEL, '--decode-ahead', '1'], journal, 100, 'SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    const resumed = await runCli(['--boxes', boxesJsonl, '-o', out, ...MODEL, '--resume']);
    assert.equal(resumed.code, 2, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resuming .*: \\d+ of ${N_IMAGES + 1} inputs already done`));
    assert.ok(bytes(out).equals(bytes(format === 'npy' ? ref.npy : ref.jsonl)), `${format}: bytes equal`);
    if (format === 'npy') assert.ok(bytes(manifestOf(out)).equals(bytes(manifestOf(ref.npy))), 'manifest bytes equal');
  }
});

test('--boxes --shard k/2 ×2 + merge equals the single run; --dtype float16 works per box', async () => {
  const out = tmp();
  const shards = await Promise.all([1, 2].map(async (k) => {
    const r = await runCli(['--boxes', boxesJsonl, '-o', join(out, 'part-{shard}.npy'), ...MODEL, '--shard', `${k}/2`, '-q']);
    assert.equal(r.code, 2, r.stderr);
    return join(out, `part-${k}.npy`);
  }));
  const merged = join(out, 'all.npy');
  const m = await runCli(['merge', ...shards, '-o', merged]);
  assert.equal(m.code, 2, m.stderr);
  assert.ok(bytes(merged).equals(bytes(ref.npy)), 'merged .npy equals the single run');
  assert.ok(bytes(manifestOf(merged)).equals(bytes(manifestOf(ref.npy))), 'merged manifest equals');

  const half = join(out, 'half.npy');
  const f16 = await runCli(['--boxes', boxesJsonl, '-o', half, ...MODEL, '--dtype', 'float16', '-q']);
  assert.equal(f16.code, 2, f16.stderr);
  assert.deepEqual(parseNpyHeader(bytes(half)).shape, parseNpyHeader(bytes(ref.npy)).shape);
  assert.equal(parseNpyHeader(bytes(half)).dtype, '<f2');
});

test('--box-format xywh: the same boxes written as x,y,width,height give the same rows', async () => {
  const xywh = join(tmp(), 'xywh.jsonl');
  const lines = readFileSync(boxesJsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  writeFileSync(xywh, lines.map((l) => JSON.stringify({ ...l, boxes: l.boxes.map(([a, b, c, d]: number[]) => [a, b, c - a, d - b]) })).join('\n'));
  const out = join(tmp(), 'x.npy');
  const r = await runCli(['--boxes', xywh, '--box-format', 'xywh', '-o', out, ...MODEL, '-q']);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(bytes(out).equals(bytes(ref.npy)), 'same .npy bytes');
  const m = readJsonl(manifestOf(out));
  assert.equal(m[0].boxFormat, 'xywh');
  assert.deepEqual(m[2].box, lines[0].boxes[1].map((v: number, k: number) => (k < 2 ? v : v - lines[0].boxes[1][k - 2])), 'box recorded as given');
});

test('--grid 2x2: window 0 is the whole image (its own row), then the tiles; --grid-no-full leaves window 0 out', async () => {
  const some = images.slice(0, 12).map((i) => i.path);
  const out = tmp();
  const [full, tiles, plain] = [join(out, 'g.npy'), join(out, 't.npy'), join(out, 'p.npy')];
  const runs = await Promise.all([
    runCli([...some, '--grid', '2x2', '-o', full, ...MODEL, '-q']),
    runCli([...some, '--grid', '2x2', '--grid-no-full', '-o', tiles, ...MODEL, '-q']),
    runCli([...some, '-o', plain, ...MODEL, '-q']),
  ]);
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  const [g, t, p] = [npyRows(full), npyRows(tiles), npyRows(plain)];
  assert.equal(g.length, 12 * 5);
  assert.equal(t.length, 12 * 4);
  const m = readJsonl(manifestOf(full)).filter((l) => l.type === 'row');
  for (let i = 0; i < 12; i++) {
    const { width: w, height: h } = images[i];
    assert.deepEqual(g[5 * i], p[i], `image ${i}: window 0 is its row`);
    for (let k = 0; k < 4; k++) assert.deepEqual(g[5 * i + 1 + k], t[4 * i + k], `image ${i} tile ${k}`);
    assert.deepEqual(m[5 * i].box, [0, 0, w, h]);
    assert.deepEqual(m[5 * i + 4].box, [Math.floor(w / 2), Math.floor(h / 2), w, h]);
  }
  const header = readJsonl(manifestOf(full))[0];
  assert.deepEqual([header.regions, header.grid, header.gridFull], ['grid', '2x2', true]);
});

test('region options: contradictions and bad files are refused in one line before anything is written', async () => {
  const out = join(tmp(), 'x.npy');
  const bad = join(tmp(), 'bad.jsonl');
  writeFileSync(bad, '{"path": "a.jpg", "boxes": [[0, 0, 1, 1]]}\n{"path": 3}\n');
  // Boxes of the wrong shape were each a failure "box [NaN]" at run time: now the file is refused.
  const flat = join(tmp(), 'flat.jsonl');
  writeFileSync(flat, '{"path": "a.jpg", "boxes": [0, 0, 100, 100]}\n');
  const objects = join(tmp(), 'objects.jsonl');
  writeFileSync(objects, '{"path": "a.jpg", "boxes": [[0, 0, 1, 1]]}\n{"path": "a.jpg", "boxes": [{"x": 0, "y": 0, "w": 10, "h": 10}]}\n');
  const noBoxes = join(tmp(), 'none.jsonl');
  writeFileSync(noBoxes, '{"path": "a.jpg", "boxes": []}\n');
  const empty = join(tmp(), 'empty.csv');
  writeFileSync(empty, '');
  const re = (p: string) => p.replace(/[.]/g, '\\.');
  const cases: [string[], RegExp][] = [
    [['--boxes', boxesJsonl, images[0].path], /--boxes names the images itself; drop the other inputs/],
    [['--boxes', boxesJsonl, '--grid', '2x2'], /--boxes and --grid contradict each other/],
    [[images[0].path, '--grid-no-full'], /--grid-no-full applies to --grid only/],
    [[images[0].path, '--grid', '0x2'], /--grid must be RxC with positive integers, e\.g\. 2x2, got '0x2'/],
    [['--boxes', bad], new RegExp(`--boxes ${re(bad)}:2: "path" is 3; it must be a non-empty string`)],
    [['--boxes', flat], new RegExp(`--boxes ${re(flat)}:1: "boxes" is \\[0,0,100,100\\], a flat list: it is a list of boxes, each \\[x0, y0, x1, y1\\]`)],
    [['--boxes', objects], new RegExp(`--boxes ${re(objects)}:2: box 0 is \\{"x":0,"y":0,"w":10,"h":10\\} \\(an object\\); each box is a list of 4 numbers`)],
    [['--boxes', noBoxes], new RegExp(`--boxes ${re(noBoxes)}: none of its 1 image has a box; nothing written`)],
    [['--boxes', empty], new RegExp(`--boxes ${re(empty)} names no images; nothing written`)],
    [['--boxes', join(dir, 'nope.jsonl')], /--boxes .*nope\.jsonl: cannot read it \(ENOENT\)/],
    [[images[0].path, '--pool', 'gem', '--gem-p', '0'], /--gem-p must be a finite number > 0, got '0'/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli([...args, '-o', out, ...MODEL]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.split('\n')[0], message);
    assert.ok(!existsSync(out), 'nothing written');
  }
  assert.deepEqual(readdirSync(join(out, '..')).filter((f) => f !== 'bad.jsonl'), [], 'no lock or temp file left');
});

test('--boxes - reads the boxes from stdin (paths relative to the working directory); a box smaller than the finest level warns once', async () => {
  const text = images.slice(0, 3).map((img) => JSON.stringify({ path: relative(dir, img.path), boxes: [[0, 0, 1, 1], [0, 0, img.width, img.height]] })).join('\n');
  const r = await runCli(['--boxes', '-', '-o', '-', ...MODEL, '--levels', '1,2,4'], { stdin: text, cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'row');
  assert.deepEqual(rows.map((l) => [l.path, l.box_index]), images.slice(0, 3).flatMap((img) => [[img.path, 0], [img.path, 1]]));
  const warnings = r.stderr.split('\n').filter((l) => l.includes('fewer than the finest level'));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0], /^spp-extract: warning: .*img-000\d\.png: box 0 spans \d×\d cells of the feature map, fewer than the finest level's 4×4 bins.*larger --size or --no-resize/);
});
