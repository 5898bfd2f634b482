import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import zlib from 'node:zlib';
import { parseNpyHeader } from '../../src/output/npy.js';
import { runAndSignal, runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { hasNumpy, runPython } from '../helpers/python.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const MODEL = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];
/**
 * Enough images that a run signalled after 120 journal records (the journal is flushed every
 * 200 ms, so it shows progress in steps) is still going when the signal lands.
 */
const N_IMAGES = 240;
let imageDir = '';
let listFile = '';

const tmp = () => tempDir('spp-batch-');
const bytes = (p: string) => readFileSync(p);
const manifestLines = readJsonl;

/**
 * Uninterrupted runs over imageDir, made once and compared against by every test: .npy float32
 * and float16 (each with its manifest), .jsonl, .json.
 */
const ref = { dir: '', npy: '', npy16: '', jsonl: '', json: '' };
const manifestOf = (npy: string) => npy.replace(/\.npy$/, '.manifest.jsonl');

before(async () => {
  imageDir = tmp();
  // Small, varied images; one broken file so failures are part of every comparison.
  await Promise.all(Array.from({ length: N_IMAGES }, (_, i) => {
    const w = 24 + (i % 17);
    const h = 16 + ((i * 7) % 23);
    return sharp({ create: { width: w, height: h, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 13) % 256 } } })
      .png()
      .toFile(join(imageDir, `img-${String(i).padStart(4, '0')}.png`));
  }));
  writeFileSync(join(imageDir, 'img-0150-broken.png'), 'not a png');
  listFile = join(imageDir, 'list.txt');

  ref.dir = tmp();
  Object.assign(ref, {
    npy: join(ref.dir, 'reference.npy'),
    npy16: join(ref.dir, 'reference16.npy'),
    jsonl: join(ref.dir, 'reference.jsonl'),
    json: join(ref.dir, 'reference.json'),
  });
  const runs = await Promise.all([
    runCli([imageDir, '-o', ref.npy, ...MODEL, '-q']),
    runCli([imageDir, '-o', ref.npy16, ...MODEL, '-q', '--dtype', 'float16']),
    runCli([imageDir, '-o', ref.jsonl, ...MODEL, '-q']),
    runCli([imageDir, '-o', ref.json, ...MODEL, '-q']),
  ]);
  for (const r of runs) assert.equal(r.code, 2, r.stderr); // the broken file
});

test('SIGINT: exit 130, a valid .npy holding exactly the rows done; --resume finishes with the bytes of an uninterrupted run', async (t) => {
  const dir = tmp();
  const out = join(dir, 'run.npy');
  const r = await runAndSignal([imageDir, '-o', out, ...MODEL, '--decode-ahead', '1'], join(dir, '.run.manifest.jsonl.partial'), 40, 'SIGINT');
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: stopping/);
  const journal = manifestLines(join(dir, 'run.manifest.jsonl'));
  const rows = journal.filter((l) => l.type === 'row').length;
  assert.ok(rows >= 40 && rows < N_IMAGES, `${rows} rows done`);
  assert.deepEqual(journal.at(-1), { type: 'summary', rows, failures: journal.filter((l) => l.type === 'failure').length, complete: false });
  const header = parseNpyHeader(bytes(out));
  assert.deepEqual(header.shape, [rows, 126]);
  assert.equal(statSync(out).size, 128 + rows * 126 * 4);
  if (hasNumpy()) {
    assert.equal(runPython('import numpy as np, sys; print(np.load(sys.argv[1]).shape)', [out]).trim(), `(${rows}, 126)`);
  } else {
    t.diagnostic('numpy missing: checked the header by hand only');
  }
  const again = await runCli([imageDir, '-o', out, ...MODEL]);
  assert.equal(again.code, 1, 'without --resume an existing output is refused');
  assert.match(again.stderr, /--resume .* --force/);
  const resumed = await runCli([imageDir, '-o', out, ...MODEL, '--resume']);
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming .*: ${journal.length - 2} of ${N_IMAGES + 1} inputs already done`));
  assert.ok(bytes(out).equals(bytes(ref.npy)), '.npy bytes equal the uninterrupted run');
  assert.ok(bytes(join(dir, 'run.manifest.jsonl')).equals(bytes(manifestOf(ref.npy))), 'manifest bytes equal');
  const done = await runCli([imageDir, '-o', out, ...MODEL, '--resume']);
  assert.match(done.stderr, /already complete/);
});

test('SIGKILL, then a torn journal line and a short data file (power cut): --resume trusts neither alone and ends byte-equal', async () => {
  const dir = tmp();
  const out = join(dir, 'run.npy');
  const partialNpy = join(dir, '.run.npy.partial');
  const partialJournal = join(dir, '.run.manifest.jsonl.partial');
  const r = await runAndSignal([imageDir, '-o', out, ...MODEL, '--decode-ahead', '1'], partialJournal, 120, 'SIGKILL');
  assert.equal(r.signal, 'SIGKILL');
  assert.ok(!existsSync(out), 'nothing under the final name after a kill');
  // Simulate a power cut: the journal's last line torn, and the data file missing its last 5 rows.
  const journal = readFileSync(partialJournal, 'utf8');
  writeFileSync(partialJournal, journal + '{"type":"row","row":99');
  const size = statSync(partialNpy).size;
  truncateSync(partialNpy, size - 5 * 126 * 4 - 100);
  const resumed = await runCli([imageDir, '-o', out, ...MODEL, '--resume', '-q']);
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.ok(bytes(out).equals(bytes(ref.npy)), '.npy bytes equal the uninterrupted run');
  assert.ok(bytes(join(dir, 'run.manifest.jsonl')).equals(bytes(manifestOf(ref.npy))), 'manifest bytes equal');
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.partial')), [], 'temp files renamed away');
});

for (const format of ['jsonl', 'json'] as const) {
  test(`.${format}: SIGKILL then SIGINT, each resumed; the result equals an uninterrupted run byte for byte`, async () => {
    const dir = tmp();
    const out = join(dir, `run.${format}`);
    const journal = format === 'jsonl' ? join(dir, '.run.jsonl.partial') : join(dir, '.run.json.journal.partial');
    const killed = await runAndSignal([imageDir, '-o', out, ...MODEL, '--decode-ahead', '1'], journal, 40, 'SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    assert.ok(!existsSync(out), 'a killed run leaves no final name');
    // A torn last line, as a power cut leaves it.
    writeFileSync(journal, readFileSync(journal, 'utf8') + '{"type":"row","index":9');
    const refused = await runCli([imageDir, '-o', out, ...MODEL]);
    assert.match(refused.stderr, /--resume .* --force/, 'leftovers are refused without --resume');
    // Resume, and interrupt the resumed run too.
    const interrupted = await runAndSignal([imageDir, '-o', out, ...MODEL, '--decode-ahead', '1', '--resume'], journal, 120, 'SIGINT');
    assert.equal(interrupted.code, 130, interrupted.stderr);
    assert.match(interrupted.stderr, new RegExp(`resuming .*: \\d+ of ${N_IMAGES + 1} inputs already done`));
    // Ctrl-C leaves a final file that says it is incomplete.
    const text = readFileSync(out, 'utf8');
    if (format === 'jsonl') assert.match(text.trimEnd().split('\n').at(-1)!, /"type":"summary".*"complete":false/);
    else assert.match(text, /"complete":false\}\}\n$/);
    const resumed = await runCli([imageDir, '-o', out, ...MODEL, '--resume', '-q']);
    assert.equal(resumed.code, 2, resumed.stderr);
    assert.ok(bytes(out).equals(bytes(ref[format])), `.${format} bytes equal the uninterrupted run`);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temp, journal or lock left');
    const again = await runCli([imageDir, '-o', out, ...MODEL, '--resume']);
    assert.match(again.stderr, new RegExp(`already complete \\(${N_IMAGES} rows, 1 failed\\)`));
  });
}

test('--resume refuses other options or another input list, naming what changed', async () => {
  const dir = tmp();
  const out = join(dir, 'run.npy');
  const cut = await runAndSignal([imageDir, '-o', out, ...MODEL, '--decode-ahead', '1'], join(dir, '.run.manifest.jsonl.partial'), 30, 'SIGINT');
  assert.equal(cut.code, 130, cut.stderr);
  const levels = await runCli([imageDir, '-o', out, ...MODEL, '--resume', '--levels', '6,3,2,1']);
  assert.equal(levels.code, 1);
  assert.match(levels.stderr, /--resume: .* different options \(.*levels: \[1,2,4\] before, \[6,3,2,1\] now/);
  const size = await runCli([imageDir, '-o', out, ...MODEL, '--resume', '--size', '160']);
  assert.match(size.stderr, /size: 224 before, 160 now/);
  const engine = await runCli([imageDir, '-o', out, '--model', fixture('tiny-layers'), '--engine', 'tfjs', '--resume']);
  assert.match(engine.stderr, /engine: "onnx" before, "tfjs" now/);
  const model = await runCli([imageDir, '-o', out, '--model', fixture('tiny-graph'), '--engine', 'onnx', '--resume']);
  assert.match(model.stderr, /model: .* before/);
  // Same count, different files: the journal's paths disagree.
  const files = readdirSync(imageDir).filter((f) => f.endsWith('.png')).sort().map((f) => join(imageDir, f));
  files[3] = files[N_IMAGES - 1];
  writeFileSync(listFile, files.join('\n'));
  const other = await runCli(['-', '-o', out, ...MODEL, '--resume'], { stdin: readFileSync(listFile) });
  assert.equal(other.code, 1);
  assert.match(other.stderr, new RegExp(`--resume: input 3 was '.*img-0003.png' before and is '.*img-${String(N_IMAGES - 2).padStart(4, '0')}.png' now; the input list changed`));
  // --force starts over whatever was there: here with a short list (the broken file among it).
  const some = readdirSync(imageDir).filter((f) => f.endsWith('.png')).sort().slice(140, 160).map((f) => join(imageDir, f));
  const forced = await runCli(['-', '-o', out, ...MODEL, '--force', '-q'], { stdin: some.join('\n') });
  assert.equal(forced.code, 2, 'with --force it starts over');
  assert.deepEqual(readJsonl(join(dir, 'run.manifest.jsonl')).filter((l) => l.type !== 'header').map((l) => l.type === 'summary' ? l.complete : l.path), [...some, true],
    'a new run: exactly the new list, complete');
});

test('--shard k/3 ×3 + merge equals a single run byte for byte (.npy and manifest), float16 too', async () => {
  for (const dtype of ['float32', 'float16']) {
    const dir = tmp();
    const single = dtype === 'float32' ? ref.npy : ref.npy16;
    // The three tasks of an array job run side by side, as they would on a cluster.
    const shards = await Promise.all([1, 2, 3].map(async (k) => {
      const env = k === 2 ? { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '0' } : k === 3 ? { JOB_COMPLETION_INDEX: '2' } : {};
      const shard = k === 1 ? '1/3' : 'auto/3';
      const r = await runCli([imageDir, '-o', join(dir, 'part-{shard}.npy'), ...MODEL, '--dtype', dtype, '--shard', shard, '-q'], { env });
      assert.ok(r.code === 0 || r.code === 2, r.stderr);
      return join(dir, `part-${k}.npy`);
    }));
    const sizes = shards.map((s) => parseNpyHeader(bytes(s)).shape[0]);
    assert.ok(sizes.every((n) => n > N_IMAGES / 6), `shards are balanced-ish: ${sizes}`);
    const merged = join(dir, 'all.npy');
    const m = await runCli(['merge', shards[2], shards[0], shards[1], '-o', merged]);
    assert.equal(m.code, 2, m.stderr); // the broken file is a recorded failure
    assert.ok(bytes(merged).equals(bytes(single)), `${dtype}: merged .npy equals the single run`);
    assert.ok(bytes(join(dir, 'all.manifest.jsonl')).equals(bytes(manifestOf(single))), `${dtype}: merged manifest equals`);
    const missing = await runCli(['merge', shards[0], shards[1], '-o', join(dir, 'x.npy')]);
    assert.match(missing.stderr, /missing shard 3\/3/);
  }
});

test('--dtype float16: numpy reads <f2 equal to the float32 run rounded by numpy', async (t) => {
  if (!hasNumpy()) return t.skip('needs python3 with numpy');
  // The shared uninterrupted runs: the same inputs written as float32 and as float16.
  const [a, b] = [ref.npy, ref.npy16];
  const out = runPython(
    'import numpy as np, sys; a = np.load(sys.argv[1]); b = np.load(sys.argv[2]); ' +
      'print(b.dtype.str, b.shape == a.shape, bool((a.astype(np.float16) == b).all()), float(np.abs(b.astype(np.float32) - a).max() / np.abs(a).max()))',
    [a, b],
  ).trim().split(' ');
  assert.deepEqual(out.slice(0, 3), ['<f2', 'True', 'True']);
  assert.ok(Number(out[3]) < 1e-3, `relative error ${out[3]}`);
});

/** A grayscale PNG of w×h zero pixels, deflated: a real decompression bomb (tiny file, huge image). */
function pngBomb(w: number, h: number, rows = h): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 0, 0, 0, 0], 8);
  const deflate = zlib.deflateSync(Buffer.alloc((w + 1) * rows), { level: 9 });
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflate), chunk('IEND', Buffer.alloc(0))]);
}

test('hostile files through the CLI: bombs, a 65536² header, thin, empty, text — each a row or a failure, the process survives', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'a-bomb-12000.png'), pngBomb(12000, 12000)); // 144M px: under the limit, decodes
  writeFileSync(join(dir, 'b-bomb-17000.png'), pngBomb(17000, 17000)); // 289M px: over the default limit
  writeFileSync(join(dir, 'c-header-65536.png'), pngBomb(65536, 65536, 4)); // claims 4G px, data ends early
  writeFileSync(join(dir, 'd-empty.jpg'), '');
  writeFileSync(join(dir, 'e-text.jpg'), 'hello, not a jpeg\n');
  await sharp({ create: { width: 1, height: 3000, channels: 3, background: '#808080' } }).png().toFile(join(dir, 'f-thin-1x3000.png'));
  await sharp({ create: { width: 1, height: 1, channels: 3, background: '#ff0000' } }).jpeg().toFile(join(dir, 'g-1x1.jpg'));
  const jpeg = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#336699' } }).jpeg().toBuffer();
  writeFileSync(join(dir, 'h-truncated.jpg'), jpeg.subarray(0, jpeg.length >> 1));

  const outcome = async (extra: string[]) => {
    const name = `out-${extra.join('').replace(/\W/g, '')}`;
    const out = join(dir, `${name}.npy`);
    const r = await runCli([dir, '-o', out, ...MODEL, '-q', '--force', ...extra]);
    assert.equal(r.signal, null, r.stderr);
    assert.equal(r.code, 2, r.stderr);
    const lines = manifestLines(join(dir, `${name}.manifest.jsonl`)).filter((l) => l.type !== 'header' && l.type !== 'summary');
    return Object.fromEntries(lines.map((l) => [l.path.split('/').pop(), l.type === 'row' ? 'row' : l.reason]));
  };
  assert.deepEqual(await outcome([]), {
    'a-bomb-12000.png': 'row',
    'b-bomb-17000.png': 'too-large',
    'c-header-65536.png': 'too-large',
    'd-empty.jpg': 'empty',
    'e-text.jpg': 'unsupported-format',
    'f-thin-1x3000.png': 'row',
    'g-1x1.jpg': 'row',
    'h-truncated.jpg': 'truncated',
  });
  // Raising the limit is a deliberate choice: the bomb then decodes (resized while streaming), the
  // 65536² header fails on its missing data; nothing is ever decoded at full size.
  const raised = await outcome(['--max-input-pixels', '5000000000']);
  assert.equal(raised['b-bomb-17000.png'], 'row');
  assert.equal(raised['c-header-65536.png'], 'truncated');
  const lenient = await outcome(['--fail-on', 'none']);
  assert.equal(lenient['h-truncated.jpg'], 'row', '--fail-on none keeps partially decodable files');
  assert.equal(lenient['b-bomb-17000.png'], 'too-large', 'the pixel limit still holds');
});
