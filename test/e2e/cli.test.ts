import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { parseJsonl, readJsonl } from '../helpers/jsonl.js';
import { hasNumpy, runPython } from '../helpers/python.js';
import { REPO_ROOT, fixture, missingShared, sharedPath } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';
import { TORTURE_EXPECTED } from '../helpers/torture.js';

/** The tiny fixture model on ONNX Runtime (the default engine); tfjs through the CLI: info below and the torture files. */
const TINY = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];
const TINY_WASM = ['--model', fixture('tiny-layers'), '--backend', 'wasm'];
const tmp = () => tempDir('spp-cli-');

/** The five fixture images in the documented order (byte order of the relative path). */
const FIXTURE_ORDER = [
  'nested/blue-alpha-40x90.png',
  'nested/gray-100x70.webp',
  'noise-100x70.jpg',
  'not-an-image.jpg',
  'red-64x48.png',
];

test('npy + manifest: rows in input order, failures recorded, exit 2, numpy loads exactly the JSON values', async (t) => {
  const dir = tmp();
  const npyOut = join(dir, 'feats.npy');
  const jsonOut = join(dir, 'feats.json');
  const images = relative(REPO_ROOT, fixture('images'));
  // The text file is named explicitly too: explicit files are always tried.
  const args = [images, join(images, 'not-an-image.jpg'), ...TINY, '--levels', '1,2', '--pool', 'avg'];
  const a = await runCli([...args, '-o', npyOut]);
  const b = await runCli([...args, '-o', jsonOut]);
  assert.equal(a.code, 2, a.stderr);
  assert.equal(b.code, 2, b.stderr);
  assert.match(a.stderr, /not-an-image\.jpg: .*unsupported/i, 'one line naming the file and the reason');
  assert.equal(a.stdout, '', 'nothing on stdout when writing a file');

  const manifest = readJsonl(join(dir, 'feats.manifest.jsonl'));
  assert.equal(manifest[0].type, 'header');
  assert.equal(manifest[0].dim, 6 * 5);
  const rows = manifest.filter((r) => r.type === 'row');
  const failures = manifest.filter((r) => r.type === 'failure');
  assert.deepEqual(rows.map((r) => relative(images, r.path)), FIXTURE_ORDER.filter((p) => !p.startsWith('not-')));
  assert.deepEqual(rows.map((r) => r.row), [0, 1, 2, 3]);
  assert.deepEqual(failures.map((f) => [f.index, relative(images, f.path), f.reason]), [
    [3, 'not-an-image.jpg', 'unsupported-format'],
    [5, 'not-an-image.jpg', 'unsupported-format'],
  ]);
  assert.deepEqual(rows.map((r) => [r.width, r.height]), [[40, 90], [100, 70], [100, 70], [64, 48]]);
  assert.deepEqual(manifest.at(-1), { type: 'summary', rows: 4, failures: 2, complete: true });

  const json = JSON.parse(readFileSync(jsonOut, 'utf8'));
  assert.equal(json.dim, 30);
  assert.deepEqual(json.levels, [1, 2]);
  assert.equal(json.items.length, 4);
  assert.equal(json.failures.length, 2);
  assert.deepEqual(readdirSync(dir).sort(), ['feats.json', 'feats.manifest.jsonl', 'feats.npy'], 'no temp files left');

  if (!hasNumpy()) return t.skip('needs python3 with numpy for the numpy.load check');
  const loaded = JSON.parse(runPython(
    'import numpy as np, json, sys; a = np.load(sys.argv[1]); print(json.dumps({"shape": a.shape, "dtype": str(a.dtype), "data": a.tolist()}))',
    [npyOut],
  ));
  assert.deepEqual(loaded.shape, [4, 30]);
  assert.equal(loaded.dtype, 'float32');
  const header = readFileSync(npyOut).readUInt16LE(8) + 10;
  assert.equal(header % 64, 0, 'data starts 64-byte aligned');
  for (let i = 0; i < 4; i++) {
    const expected = Float32Array.from(json.items[i].descriptor);
    assert.deepEqual(Float32Array.from(loaded.data[i]), expected, `row ${i} equals the JSON item`);
  }
});

test('stdin list (newline and -0) → JSONL on stdout, one record per input, failures included', async () => {
  const files = [fixture('images', 'red-64x48.png'), fixture('images', 'missing.png'), fixture('images', 'noise-100x70.jpg')];
  const nl = await runCli(['-', '-o', '-', ...TINY], { stdin: files.join('\n') + '\n' });
  const nul = await runCli(['-', '-0', '-o', '-', ...TINY, '--quiet'], { stdin: files.join('\0') });
  assert.equal(nl.code, 2, nl.stderr);
  const lines = parseJsonl(nl.stdout);
  // The same journal as a .jsonl file: header, one record per input, summary.
  assert.equal(lines[0].type, 'header');
  assert.equal(lines[0].dim, 6 * 21);
  assert.deepEqual(lines.at(-1), { type: 'summary', rows: 2, failures: 1, complete: true });
  const records = lines.slice(1, -1);
  assert.deepEqual(records.map((r) => r.type), ['row', 'failure', 'row']);
  assert.deepEqual(records.map((r) => r.path), files);
  assert.equal(records[0].descriptor.length, 6 * 21);
  assert.equal(records[1].reason, 'missing');
  assert.match(nl.stderr, /missing\.png/);
  assert.equal(nul.stdout, nl.stdout, '-0 reads the same list');
});

test('empty input list → exit 1, nothing written (an empty find is a mistake, and a 0-row output would block the corrected run)', async () => {
  const dir = tmp();
  const out = join(dir, 'empty.npy');
  const r = await runCli(['-', '-o', out, ...TINY], { stdin: '' });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /the inputs name no images \(stdin listed no paths\); nothing written/);
  assert.deepEqual(readdirSync(dir), []);
});

/**
 * fetch() made to fail in the child as it does on a machine without network (DNS fails), so the
 * test does not depend on this machine's network: online, the download would succeed and prove
 * nothing. Loaded with --import before the CLI's own modules.
 */
const OFFLINE = `--import=data:text/javascript,${encodeURIComponent(
  "globalThis.fetch = async (url) => { throw new TypeError('fetch failed', { cause: new Error('getaddrinfo ENOTFOUND ' + new URL(String(url)).host) }); };",
)}`;

test('offline with the default model: one clear error pointing at --model DIR', async () => {
  const r = await runCli([fixture('images', 'red-64x48.png'), '-o', '-', '--backend', 'wasm'], {
    env: { XDG_CACHE_HOME: tmp(), NODE_OPTIONS: [process.env.NODE_OPTIONS, OFFLINE].filter(Boolean).join(' ') },
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /could not download it from any of its 2 sources \(getaddrinfo ENOTFOUND tfhub\.dev \(https:\/\/tfhub\.dev\/.*`spp-extract models pull mobilenet_v2_1\.00`.*--model \/path\/to\/dir/);
  assert.match(r.stderr, /ENOTFOUND tfhub\.dev/, 'the simulated network failure is the one reported');
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  assert.equal(r.stdout, '', 'nothing written to stdout');
});

test('info: backend, layer, channels, descriptor length; --layers lists candidates', async () => {
  const r = await runCli(['info', ...TINY_WASM, '--levels', '6,3,2,1', '--json', '--layers']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.backend, 'wasm');
  assert.equal(info.layer, 'pw3');
  assert.equal(info.channels, 6);
  assert.equal(info.dim, 6 * (36 + 9 + 4 + 1));
  assert.deepEqual(info.layers.map((l: { name: string }) => l.name), ['input_1', 'conv1', 'dw2', 'pw3']);
  const text = await runCli(['info', ...TINY_WASM]);
  assert.match(text.stdout, /descriptor length\s+126 = 6 × \(1 \+ 4 \+ 16\)/);
  assert.equal(info.gemP, undefined, 'the GeM exponent only with --pool gem');
  const gem = await runCli(['info', ...TINY_WASM, '--pool', 'gem', '--gem-p', '2.5']);
  assert.match(gem.stdout, /pool\s+gem \(p = 2\.5\)/);
});

/** One torture file per failure reason, and rows a naive decoder gets wrong (the whole set: test/integration/torture.test.ts). */
const TORTURE_SUBSET = [
  'avif-sequence-star.avifs', 'gif-animated-30-frames-alpha.gif', 'gif-no-frames.gif', 'jpeg-exif-orientation-Landscape_6.jpg',
  'jpeg-huge-20000x14000-1MB.jpg', 'png-thin-256x10-gradient.png', 'png-truncated.png', 'text-file-with-jpg-extension.jpg',
  'tiff-cmyk-16bit.tif', 'zero-byte-file.jpg',
];

test('torture files through the CLI: each a row or a recorded failure with the expected reason, one stderr line each, exit 2, no crash', async (t) => {
  const skip = missingShared('images', 'torture') ?? missingShared('models', 'tfhub-mobilenet_v1_025_224');
  if (skip) return t.skip(skip);
  const dir = tmp();
  const out = join(dir, 'torture.npy');
  // Every file named explicitly (stdin list), so none is filtered out by extension.
  const files = TORTURE_SUBSET;
  const expected = Object.fromEntries(files.map((f) => [f, TORTURE_EXPECTED[f]]));
  assert.deepEqual(new Set(Object.values(expected)), new Set(Object.values(TORTURE_EXPECTED)), 'every outcome of the full set is represented');
  const list = files.map((f) => sharedPath('images', 'torture', f)).join('\n');
  const r = await runCli(['-', '-o', out, '--model', sharedPath('models', 'tfhub-mobilenet_v1_025_224'), '--backend', 'wasm', '--quiet'], { stdin: list });
  assert.equal(r.signal, null);
  assert.equal(r.code, 2, r.stderr.slice(-2000));
  const manifest = readJsonl(join(dir, 'torture.manifest.jsonl'));
  const listed = manifest.filter((m) => m.type === 'row' || m.type === 'failure');
  assert.deepEqual(listed.map((m) => m.index), files.map((_, i) => i), 'one record per input, in order');
  const outcome = Object.fromEntries(listed.map((m) => [m.path.split('/').pop(), m.type === 'row' ? 'row' : m.reason]));
  assert.deepEqual(outcome, expected);
  const failures = listed.filter((m) => m.type === 'failure');
  const failLines = r.stderr.trim().split('\n').filter((l) => l.includes('failed:'));
  assert.equal(failLines.length, failures.length, 'one stderr line per failure');
  for (const f of failures) assert.ok(failLines.some((l) => l.includes(f.path) && l.includes(f.reason)), f.path);
  const rows = listed.length - failures.length;
  assert.equal(readFileSync(out).length, 128 + rows * 256 * 21 * 4, 'the .npy holds exactly the rows');
});

test('labelled set: 500 photos → 500 rows', async (t) => {
  const skip = missingShared('images', 'labelled') ?? missingShared('models', 'tfhub-mobilenet_v1_025_224');
  if (skip) return t.skip(skip);
  const dir = tmp();
  const out = join(dir, 'labelled.npy');
  const r = await runCli([sharedPath('images', 'labelled'), '-o', out, '--model', sharedPath('models', 'tfhub-mobilenet_v1_025_224'), '--engine', 'onnx']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const manifest = readJsonl(join(dir, 'labelled.manifest.jsonl'));
  assert.equal(manifest.filter((m) => m.type === 'row').length, 500);
  assert.equal(readFileSync(out).length, 128 + 500 * 256 * 21 * 4);
});
