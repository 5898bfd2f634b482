/**
 * Issue 17, attack 1: --force used to delete the old output before anything was checked, so a run
 * that then failed (a typo in --model, an option error, its own input) destroyed it. Now nothing is
 * removed until the new output exists, and an output that is also an input is refused up front.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { encodeModel } from '../../src/backbone/onnx/proto.js';
import { nodeIo, type OutputIo } from '../../src/output/io.js';
import sharp from 'sharp';
import { runAndSignal, runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { runMain } from '../helpers/main.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const IMAGES = [fixture('images', 'red-64x48.png'), fixture('images', 'noise-100x70.jpg')];
let cache = '';
const model = () => ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache, '-q'];
const manifestOf = (npy: string) => npy.replace(/\.npy$/, '.manifest.jsonl');

before(() => {
  cache = join(tempDir('spp-force-'), 'cache');
});

/** Every file in a folder with its bytes: "intact" means this does not change. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).filter((f) => f !== 'cache' && f !== 'images').map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));
}

async function goodOutput(dir: string, name: string): Promise<string> {
  const out = join(dir, name);
  const r = await runCli([...IMAGES, '-o', out, ...model()]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

test('--force with a --model typo or an option error leaves the old output intact', async () => {
  const dir = tempDir('spp-force-');
  const npy = await goodOutput(dir, 'good.npy');
  const json = await goodOutput(dir, 'good.json');
  const before = snapshot(dir);
  const typo = await runCli([...IMAGES, '-o', npy, '--force', ...model(), '--model', join(dir, 'typo')]);
  assert.equal(typo.code, 1, typo.stderr);
  const dtype = await runCli([...IMAGES, '-o', json, '--force', '--dtype', 'float16', ...model()]);
  assert.equal(dtype.code, 1, dtype.stderr);
  assert.match(dtype.stderr, /--dtype float16 applies to \.npy output only/);
  assert.deepEqual(snapshot(dir), before);
});

test('--force that succeeds replaces the old output with exactly a fresh run\'s bytes', async () => {
  const dir = tempDir('spp-force-');
  const out = await goodOutput(dir, 'x.npy');
  const other = await runCli([IMAGES[0], '-o', out, '--force', ...model()]);
  assert.equal(other.code, 0, other.stderr);
  const fresh = await runCli([IMAGES[0], '-o', join(dir, 'fresh.npy'), ...model()]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.deepEqual(readFileSync(out), readFileSync(join(dir, 'fresh.npy')));
  const rows = (p: string) => readJsonl(p).filter((l) => l.type !== 'summary');
  assert.deepEqual(rows(manifestOf(out)), rows(join(dir, 'fresh.manifest.jsonl')));
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temp or lock file left');
});

test('an output that is its own --boxes file is refused, and the boxes file kept', async () => {
  const dir = tempDir('spp-force-');
  const boxes = join(dir, 'boxes.jsonl');
  writeFileSync(boxes, JSON.stringify({ path: IMAGES[0], boxes: [[0, 0, 10, 10]] }) + '\n');
  const before = snapshot(dir);
  const r = await runCli(['--boxes', boxes, '-o', boxes, '--force', ...model()]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /-o .*boxes\.jsonl would replace the boxes file .*boxes\.jsonl/);
  assert.deepEqual(snapshot(dir), before);
});

test('an output that is one of the images listed (a glob over the output folder) is refused', async () => {
  const dir = tempDir('spp-force-');
  const out = await goodOutput(dir, 'feats.jsonl');
  const before = snapshot(dir);
  const r = await runCli([...IMAGES, join(dir, '*'), '-o', out, '--force', ...model()]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /would replace the input .*feats\.jsonl/);
  assert.deepEqual(snapshot(dir), before);
});

test('merge --force onto one of its shards, or a link to one, is refused and the shards kept', async () => {
  const dir = tempDir('spp-force-');
  const inputs = [...IMAGES, fixture('images', 'not-an-image.jpg')];
  for (const k of [1, 2, 3]) {
    const r = await runCli([...inputs, '-o', join(dir, `s${k}.npy`), '--shard', `${k}/3`, ...model()]);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
  }
  symlinkSync(join(dir, 's2.npy'), join(dir, 'link.npy'));
  const before = snapshot(dir);
  const shards = [1, 2, 3].map((k) => join(dir, `s${k}.npy`));
  const onShard = await runCli(['merge', ...shards, '-o', shards[0], '--force']);
  assert.equal(onShard.code, 1);
  assert.match(onShard.stderr, /would replace the shard .*s1\.npy/);
  const onLink = await runCli(['merge', ...shards, '-o', join(dir, 'link.npy'), '--force']);
  assert.equal(onLink.code, 1);
  assert.match(onLink.stderr, /link\.npy would replace the shard .*s2\.npy/);
  assert.deepEqual(snapshot(dir), before);
  const ok = await runCli(['merge', ...shards, '-o', join(dir, 'all.npy')]);
  assert.equal(ok.code, 2, ok.stderr); // not-an-image.jpg is a recorded failure
});

test('--force: a failure between the two final renames never pairs new rows with the old complete manifest', async () => {
  const dir = tempDir('spp-force-');
  const out = await goodOutput(dir, 'x.npy');
  let renames = 0;
  // The second rename is the manifest's: the new .npy is in place, its manifest not yet.
  const io: OutputIo = { ...nodeIo, rename: async (from, to) => (++renames === 2 ? Promise.reject(Object.assign(new Error('EIO: injected'), { code: 'EIO' })) : nodeIo.rename(from, to)) };
  const r = await runMain([IMAGES[0], '-o', out, '--force', ...model()], { io });
  assert.equal(r.code, 1, r.stderr);
  assert.ok(!existsSync(manifestOf(out)), 'the old manifest, which vouched for the old rows, is gone');
  const resumed = await runCli([IMAGES[0], '-o', out, '--resume', ...model()]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const fresh = await runCli([IMAGES[0], '-o', join(dir, 'fresh.npy'), ...model()]);
  assert.deepEqual(readFileSync(out), readFileSync(join(dir, 'fresh.npy')));
});

test('--force onto a file of --model (its model.json, a weight shard, the .onnx itself) is refused and the model kept', async () => {
  const dir = tempDir('spp-force-');
  const modelDir = join(dir, 'tiny');
  cpSync(fixture('tiny-layers'), modelDir, { recursive: true });
  const own = ['--model', modelDir, '--engine', 'onnx', '--threads', '1', '--cache-dir', cache, '-q'];
  const onnx = join(dir, 'net.onnx');
  writeFileSync(onnx, encodeModel({
    graph: {
      name: 'user',
      nodes: [{ opType: 'Relu', inputs: ['pixels'], outputs: ['feat'], name: 'relu' }],
      initializers: [],
      inputs: [{ name: 'pixels', elemType: 1, shape: ['N', 3, 'H', 'W'] }],
      outputs: [{ name: 'feat', elemType: 1 }],
    },
  }));
  const before = readdirSync(modelDir).map((f) => readFileSync(join(modelDir, f)).toString('base64'));
  const beforeOnnx = readFileSync(onnx);
  for (const [out, format] of [[join(modelDir, 'group1-shard1of1.bin'), 'npy'], [join(modelDir, 'model.json'), 'json']]) {
    const r = await runCli([...IMAGES, '-o', out, '--format', format, '--force', ...own]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /would replace a file of --model/);
  }
  const r = await runCli([...IMAGES, '-o', onnx, '--format', 'npy', '--force', '--model', onnx, '--cache-dir', cache, '-q']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /net\.onnx would replace a file of --model/);
  assert.deepEqual(readdirSync(modelDir).map((f) => readFileSync(join(modelDir, f)).toString('base64')), before);
  assert.deepEqual(readFileSync(onnx), beforeOnnx);
});

test('--force cut short by SIGTERM keeps the old output; --resume then finishes the new run to a fresh run\'s bytes', async () => {
  const dir = tempDir('spp-force-');
  const images = join(dir, 'images');
  mkdirSync(images);
  await Promise.all(Array.from({ length: 240 }, (_, i) => sharp({ create: { width: 24 + (i % 9), height: 20, channels: 3, background: { r: i, g: 255 - i, b: (i * 7) % 256 } } })
    .png().toFile(join(images, `${String(i).padStart(3, '0')}.png`))));
  const out = await goodOutput(dir, 'x.npy');
  const before = snapshot(dir);
  const cut = await runAndSignal([images, '-o', out, '--force', ...model()], join(dir, '.x.manifest.jsonl.partial'), 120, 'SIGTERM');
  assert.ok(cut.sent, 'the signal was sent mid-run');
  assert.equal(cut.code, 130, cut.stderr);
  const after = snapshot(dir);
  for (const f of ['x.npy', 'x.manifest.jsonl']) assert.equal(after[f], before[f], `${f} is still the earlier output`);
  assert.ok(existsSync(join(dir, '.x.npy.partial')), "the new run's progress is kept for --resume");
  const resumed = await runCli([images, '-o', out, '--resume', ...model()]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((await runCli([images, '-o', join(dir, 'fresh.npy'), ...model()])).code, 0);
  assert.deepEqual(readFileSync(out), readFileSync(join(dir, 'fresh.npy')));
});
