/**
 * Issue 17 item 9: a user .onnx with bad outputs. Tiny models written with our proto writer:
 * a feature map with a 0 dimension is refused at load; NaN / ±Inf descriptors fail their input as
 * `non-finite` unless --allow-non-finite (.npy only); ONNX Runtime's own log lines never reach stderr.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadOnnxBackbone } from '../../src/backbone/onnx/backbone.js';
import { encodeModel, floatTensor, int64Tensor, type NodeProto, type TensorProto } from '../../src/backbone/onnx/proto.js';
import { parseNpyHeader } from '../../src/output/npy.js';
import { createExtractor } from '../../src/pipeline/extractor.js';
import { NonFiniteError, nonFiniteSummary } from '../../src/pipeline/finite.js';
import { runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { NO_NUMPY, hasNumpy, runPython } from '../helpers/python.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('spp-bad-outputs-');
const RED = fixture('images', 'red-64x48.png');

/** A .onnx from pixels [N,3,H,W] (nchw, range [0,1]) to `feat` through `nodes`. */
function model(name: string, nodes: NodeProto[], initializers: TensorProto[] = []): string {
  const file = join(dir, `${name}.onnx`);
  writeFileSync(file, encodeModel({
    graph: { name, nodes, initializers, inputs: [{ name: 'x', elemType: 1, shape: ['N', 3, 'H', 'W'] }], outputs: [{ name: 'feat', elemType: 1 }] },
  }));
  return file;
}

const slice = (axis: number, start: number, end: number): [NodeProto[], TensorProto[]] => [
  [{ opType: 'Slice', inputs: ['x', 'st', 'en', 'ax'], outputs: ['feat'] }],
  [int64Tensor('st', [1], [start]), int64Tensor('en', [1], [end]), int64Tensor('ax', [1], [axis])],
];
/** 0 channels: ONNX Runtime's shape inference already declares [N,0,H,W]. */
const zeroChannels = model('zero-channels', ...slice(1, 0, 0));
/** 0 height, known only once it runs: starts past any image's height. */
const zeroHeight = model('zero-height', ...slice(2, 100000, 100001));
/** log(x − 0.5): finite where a pixel is above mid-grey, NaN where it is below. */
const logHalf = model('log-half', [{ opType: 'Sub', inputs: ['x', 'half'], outputs: ['s'] }, { opType: 'Log', inputs: ['s'], outputs: ['feat'] }], [floatTensor('half', [1], [0.5])]);
/** x / 0: +Inf where a channel is lit, NaN (0/0) where it is 0. */
const divZero = model('div-zero', [{ opType: 'Div', inputs: ['x', 'zero'], outputs: ['feat'] }], [floatTensor('zero', [1], [0])]);
/** log(x): -Inf where a channel is 0. */
const logX = model('log', [{ opType: 'Log', inputs: ['x'], outputs: ['feat'] }]);
/** A fixed-size reshape: any input but 224x224 fails inside ONNX Runtime, which logs it itself. */
const fixed224 = model('fixed-224', [{ opType: 'Reshape', inputs: ['x', 'shape'], outputs: ['feat'] }], [int64Tensor('shape', [4], [1, 3, 224, 224])]);

async function png(name: string, width: number, height: number, left: string, right: string): Promise<string> {
  const half = (colour: string) => sharp({ create: { width: width / 2, height, channels: 3, background: colour } }).png().toBuffer();
  const file = join(dir, name);
  await sharp({ create: { width, height, channels: 3, background: left } })
    .composite([{ input: await half(right), left: width / 2, top: 0 }]).png().toFile(file);
  return file;
}

test('a feature map with a 0 dimension is refused at load: one line naming the model, the output and its shape', async () => {
  await assert.rejects(loadOnnxBackbone({ model: zeroChannels, threads: 1 }),
    { message: `--model ${zeroChannels}: output 'feat' declares shape [N,0,H,W]: a feature map needs every dimension of at least 1` });
  await assert.rejects(loadOnnxBackbone({ model: zeroHeight, threads: 1 }),
    { message: `--model ${zeroHeight}: output 'feat' gave the probe shape [1,3,0,224]: a feature map needs every dimension of at least 1` });
  const out = join(dir, 'zero.npy');
  const r = await runCli([RED, '-o', out, '--model', zeroHeight]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, `spp-extract: error: --model ${zeroHeight}: output 'feat' gave the probe shape [1,3,0,224]: a feature map needs every dimension of at least 1\n`);
  assert.ok(!existsSync(out), 'no output');
});

test('NaN in a descriptor fails that input as non-finite (exit 2); the JSONL output holds only finite rows, never null', async () => {
  const white = await png('white.png', 64, 48, '#ffffff', '#ffffff');
  const out = join(dir, 'nan.jsonl');
  const r = await runCli([white, RED, '-o', out, '--model', logHalf, '-q']);
  assert.equal(r.code, 2, r.stderr);
  const lines = readJsonl(out);
  const rows = lines.filter((l) => l.type === 'row');
  const failures = lines.filter((l) => l.type === 'failure');
  assert.equal(rows.length, 1);
  assert.equal(rows[0].path, white);
  assert.ok(rows[0].descriptor.every((v: unknown) => typeof v === 'number' && Number.isFinite(v)), 'finite numbers only');
  assert.ok(!readFileSync(out, 'utf8').includes('null'), 'no null anywhere');
  assert.deepEqual(failures.map((f) => [f.path, f.reason]), [[RED, 'non-finite']]);
  // Red: R above mid-grey (finite), G and B at 0 (NaN): 2 of 3 channels in each of the 21 bins.
  assert.equal(failures[0].error, `${RED}: non-finite: descriptor has 42 NaN of 63 values (the model's output is not finite; --allow-non-finite keeps them in .npy)`);
  assert.match(r.stderr, new RegExp(`^spp-extract: failed: ${RED.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: non-finite: descriptor has 42 NaN of 63 values`, 'm'));
});

test('region runs check each box row: the NaN half fails as non-finite, the finite half is a row', async () => {
  const halves = await png('halves.png', 64, 48, '#ffffff', '#000000');
  const out = join(dir, 'grid.npy');
  // --no-resize: map cells are the image's pixels, so the halves do not blur into each other.
  const r = await runCli([halves, '-o', out, '--model', logHalf, '--grid', '1x2', '--no-resize', '-q']);
  assert.equal(r.code, 2, r.stderr);
  const records = readJsonl(out.replace(/\.npy$/, '.manifest.jsonl')).filter((l) => l.type === 'row' || l.type === 'failure');
  assert.deepEqual(records.map((l) => [l.box_index, l.type, l.reason]), [[0, 'failure', 'non-finite'], [1, 'row', undefined], [2, 'failure', 'non-finite']]);
  assert.match(records[2].error, /: box 2: non-finite: descriptor has 63 NaN of 63 values/);
});

test('--allow-non-finite keeps NaN and ±Inf in .npy bit for bit, and is refused with JSON / JSONL output', async () => {
  for (const [format, name] of [['JSONL', 'x.jsonl'], ['JSON', 'x.json']] as const) {
    const r = await runCli([RED, '-o', join(dir, name), '--model', divZero, '--allow-non-finite']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^spp-extract: error: --allow-non-finite applies to \\.npy output only: ${format} cannot hold NaN or ±Inf`));
    assert.ok(!existsSync(join(dir, name)), 'nothing written');
  }
  const pure = await png('pure-red.png', 64, 48, '#ff0000', '#ff0000');
  const npy = join(dir, 'inf.npy');
  const r = await runCli([pure, pure, '-o', npy, '--model', divZero, '--allow-non-finite', '-q']);
  assert.equal(r.code, 0, r.stderr);
  const header = JSON.parse(readFileSync(npy.replace(/\.npy$/, '.manifest.jsonl'), 'utf8').split('\n')[0]);
  assert.equal(header.allowNonFinite, true, 'the header records it (resume and merge compare it)');
  const bytes = readFileSync(npy);
  const parsed = parseNpyHeader(bytes)!;
  assert.deepEqual([parsed.dtype, parsed.shape], ['<f4', [2, 63]]);
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset + parsed.headerBytes, bytes.byteOffset + bytes.length));
  // R = 1 → 1/0 = +Inf; G = B = 0 → 0/0 = NaN, in each of the 21 bins, both rows.
  assert.equal(nonFiniteSummary(values), '84 NaN and 42 +Inf of 126 values');
  for (let i = 0; i < values.length; i++) assert.ok(i % 3 === 0 ? values[i] === Infinity : Number.isNaN(values[i]), `value ${i}: ${values[i]}`);

  const neg = join(dir, 'neg.npy');
  assert.equal((await runCli([pure, '-o', neg, '--model', logX, '--allow-non-finite', '-q'])).code, 0);
  if (!hasNumpy()) return void console.log(NO_NUMPY);
  const counts = runPython(
    'import numpy as np, sys\n' +
    'for f in sys.argv[1:]:\n' +
    '  a = np.load(f)\n' +
    '  print(a.dtype, a.shape, int(np.isnan(a).sum()), int(np.isposinf(a).sum()), int(np.isneginf(a).sum()), int((a == 0).sum()))',
    [npy, neg]).trim().split('\n');
  // log(1) = 0 for R, log(0) = -Inf for G and B.
  assert.deepEqual(counts, ['float32 (2, 63) 84 42 0 0', 'float32 (1, 63) 0 0 42 21']);
});

test('the library: extract throws NonFiniteError unless allowNonFinite; extractRegions too', async () => {
  const pure = await png('pure-red-lib.png', 64, 48, '#ff0000', '#ff0000');
  const ex = await createExtractor({ model: divZero, engine: 'onnx', threads: 1 });
  try {
    assert.equal(ex.info.allowNonFinite, false);
    await assert.rejects(ex.extract(pure), (err: unknown) => err instanceof NonFiniteError && /42 NaN and 21 \+Inf of 63 values/.test(err.message));
    await assert.rejects(ex.extractRegions(pure, [[0, 0, 64, 48]]), (err: unknown) => err instanceof NonFiniteError && /^boxes\[0\]: non-finite: /.test(err.message));
  } finally {
    await ex.dispose();
  }
  const allowing = await createExtractor({ model: divZero, engine: 'onnx', threads: 1, allowNonFinite: true });
  try {
    assert.equal(nonFiniteSummary(await allowing.extract(pure)), '42 NaN and 21 +Inf of 63 values');
  } finally {
    await allowing.dispose();
  }
  await assert.rejects(createExtractor({ model: divZero, allowNonFinite: 'yes' as unknown as boolean }), /allowNonFinite must be true or false/);
});

test("ONNX Runtime's own log lines never reach stderr: a failing run says one line of ours", async () => {
  const r = await runCli([fixture('images', 'noise-100x70.jpg'), '-o', join(dir, 'fail.npy'), '--model', fixed224]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(!r.stderr.includes('\x1b'), `no colour codes: ${JSON.stringify(r.stderr)}`);
  assert.ok(!/\[[EW]:onnxruntime/.test(r.stderr), r.stderr);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.filter((l) => l.includes('Reshape')).length, 1, r.stderr);
  assert.match(lines[0]!, /^spp-extract: failed: .*noise-100x70\.jpg: backbone failed: Non-zero status code returned while running Reshape node/);
  assert.match(lines.at(-1)!, /^spp-extract: done: 0 rows, 1 failed/);
});

/** x · 1e5: finite in float32, past float16's 65504 wherever a channel is lit. */
const times1e5 = model('times-1e5', [{ opType: 'Mul', inputs: ['x', 'big'], outputs: ['feat'] }], [floatTensor('big', [1], [1e5])]);

test('--dtype float16: a finite descriptor past float16\'s range fails as non-finite (it would be written as Inf), unless --allow-non-finite', async () => {
  const npy = join(dir, 'f16.npy');
  const r = await runCli([RED, '-o', npy, '--model', times1e5, '--dtype', 'float16']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /failed: .*red-64x48\.png: non-finite: descriptor has 21 of 63 values beyond float16's range/);
  const lines = readJsonl(npy.replace(/\.npy$/, '.manifest.jsonl'));
  assert.deepEqual(lines.slice(1).map((l) => [l.type, l.reason]), [['failure', 'non-finite'], ['summary', undefined]]);
  assert.deepEqual(parseNpyHeader(readFileSync(npy))!.shape, [0, 63]);
  // float32 holds it; --allow-non-finite writes float16's +Inf on purpose.
  assert.equal((await runCli([RED, '-o', join(dir, 'f32.npy'), '--model', times1e5, '-q'])).code, 0);
  const kept = join(dir, 'f16-allowed.npy');
  assert.equal((await runCli([RED, '-o', kept, '--model', times1e5, '--dtype', 'float16', '--allow-non-finite', '-q'])).code, 0);
  const bytes = readFileSync(kept);
  const halves = new Uint16Array(bytes.buffer.slice(bytes.byteOffset + 128, bytes.byteOffset + bytes.length));
  assert.equal(halves.filter((h) => h === 0x7c00).length, 21, '+Inf in float16 for the 21 lit red values');
});
