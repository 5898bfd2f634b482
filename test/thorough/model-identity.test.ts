/**
 * Issue 17, attack 3: a different model behind the same --model path (a re-export, a moved symlink)
 * must not be mixed into one output by --resume or merge. Outputs record the model's content
 * (SHA-256 of its files); resume and merge refuse another one, naming both.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeModel, floatTensor } from '../../src/backbone/onnx/proto.js';
import { runCli } from '../helpers/cli.js';
import { parseJsonl } from '../helpers/jsonl.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const IMAGES = [fixture('images', 'red-64x48.png'), fixture('images', 'noise-100x70.jpg'), fixture('images', 'red-64x48.png')];
const SHARD = 'group1-shard1of1.bin';

/** Computed here, independently of the tool: model.json's bytes, then the shard's. */
function tfjsModelSha(dir: string): string {
  return createHash('sha256').update(readFileSync(join(dir, 'model.json'))).update(readFileSync(join(dir, SHARD))).digest('hex');
}

/** A copy of the tiny layers model whose float32 weights are multiplied by `factor` (a re-export with other weights). */
function modelCopy(dir: string, name: string, factor = 1): string {
  const to = join(dir, name);
  cpSync(fixture('tiny-layers'), to, { recursive: true });
  if (factor !== 1) scaleWeights(join(to, SHARD), factor);
  return to;
}

function scaleWeights(file: string, factor: number): void {
  const bytes = readFileSync(file);
  const w = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  for (let i = 0; i < w.length; i++) w[i] *= factor;
  writeFileSync(file, bytes); // in place: same inode, as an exporter overwriting its file
}

const common = (cache: string) => ['--engine', 'onnx', '--threads', '1', '--cache-dir', cache, '-q'];

/** A .jsonl cut back to its header and first `records` records: what a killed run leaves. */
function cutJsonl(path: string, records: number): void {
  const lines = readFileSync(path, 'utf8').split('\n');
  writeFileSync(path, lines.slice(0, 1 + records).join('\n') + '\n');
}

test('the header records the model content SHA-256, the same on a cache hit as on a conversion', async () => {
  const dir = tempDir('spp-modelid-');
  const cache = join(dir, 'cache');
  const model = modelCopy(dir, 'm');
  for (const run of ['converted', 'cache hit']) {
    const out = join(dir, `${run}.jsonl`);
    const r = await runCli([...IMAGES, '-o', out, '--model', model, ...common(cache)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseJsonl(readFileSync(out, 'utf8'))[0].modelSha256, tfjsModelSha(model), run);
  }
});

test('--resume refuses a TF.js model re-exported in place with other weights, naming both identities', async () => {
  const dir = tempDir('spp-modelid-');
  const cache = join(dir, 'cache');
  const model = modelCopy(dir, 'm');
  const out = join(dir, 'x.jsonl');
  assert.equal((await runCli([...IMAGES, '-o', out, '--model', model, ...common(cache)])).code, 0);
  cutJsonl(out, 1);
  const before = tfjsModelSha(model);
  scaleWeights(join(model, SHARD), 3);
  const after = tfjsModelSha(model);
  const r = await runCli([...IMAGES, '-o', out, '--model', model, '--resume', ...common(cache)]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /different options \(the model's content/);
  assert.ok(r.stderr.includes(before) && r.stderr.includes(after), r.stderr);
  assert.equal(readFileSync(out, 'utf8').split('\n').length, 3, 'the interrupted output is left as it was');
});

test('merge refuses shards made by different models behind one symlink, and merges shards of one model', async () => {
  const dir = tempDir('spp-modelid-');
  const cache = join(dir, 'cache');
  const [a, b] = [modelCopy(dir, 'a'), modelCopy(dir, 'b', 3)];
  const current = join(dir, 'current');
  const shard = async (k: number, target: string, name: string) => {
    try {
      unlinkSync(current);
    } catch {
      /* first time */
    }
    symlinkSync(target, current);
    const r = await runCli([...IMAGES, '-o', join(dir, `${name}-${k}.npy`), '--shard', `${k}/2`, '--model', current, ...common(cache)]);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
  };
  await shard(1, a, 'mixed');
  await shard(2, b, 'mixed');
  const mixed = await runCli(['merge', join(dir, 'mixed-1.npy'), join(dir, 'mixed-2.npy'), '-o', join(dir, 'mixed.npy')]);
  assert.equal(mixed.code, 1, mixed.stderr);
  assert.ok(mixed.stderr.includes(tfjsModelSha(a)) && mixed.stderr.includes(tfjsModelSha(b)), mixed.stderr);

  await shard(1, a, 'same');
  await shard(2, a, 'same');
  const same = await runCli(['merge', join(dir, 'same-1.npy'), join(dir, 'same-2.npy'), '-o', join(dir, 'same.npy')]);
  assert.equal(same.code, 0, same.stderr);
});

/** A user .onnx: one 1x1 conv, weights scaled by `factor`. */
function writeOnnx(path: string, factor: number): void {
  const W = [0.5, -1, 2, 0.25, 0.75, -0.5].map((v) => v * factor);
  writeFileSync(path, encodeModel({
    graph: {
      name: 'user',
      nodes: [{ opType: 'Conv', inputs: ['pixels', 'W', 'B'], outputs: ['feat'], name: 'conv' }],
      initializers: [floatTensor('W', [2, 3, 1, 1], W), floatTensor('B', [2], [0.1, -0.2])],
      inputs: [{ name: 'pixels', elemType: 1, shape: ['N', 3, 'H', 'W'] }],
      outputs: [{ name: 'feat', elemType: 1 }],
    },
  }));
}

test('--resume refuses a user .onnx re-exported to the same file name', async () => {
  const dir = tempDir('spp-modelid-');
  const net = join(dir, 'net.onnx');
  writeOnnx(net, 1);
  const out = join(dir, 'x.jsonl');
  const args = [...IMAGES, '-o', out, '--model', net, ...common(join(dir, 'cache'))];
  assert.equal((await runCli(args)).code, 0);
  assert.equal(parseJsonl(readFileSync(out, 'utf8'))[0].modelSha256, createHash('sha256').update(readFileSync(net)).digest('hex'));
  cutJsonl(out, 1);
  writeOnnx(net, 3);
  const r = await runCli([...args, '--resume']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /the model's content .* before, .* now/);
});

test('an output from before model identities resumes with a warning, to the same records', async () => {
  const dir = tempDir('spp-modelid-');
  const cache = join(dir, 'cache');
  const model = modelCopy(dir, 'm');
  const [ref, out] = [join(dir, 'ref.jsonl'), join(dir, 'old.jsonl')];
  assert.equal((await runCli([...IMAGES, '-o', ref, '--model', model, ...common(cache)])).code, 0);
  cpSync(ref, out);
  cutJsonl(out, 1);
  const lines = readFileSync(out, 'utf8').split('\n');
  const { modelSha256: _drop, ...oldHeader } = JSON.parse(lines[0]);
  writeFileSync(out, [JSON.stringify(oldHeader), ...lines.slice(1)].join('\n'));
  const r = await runCli([...IMAGES, '-o', out, '--model', model, '--resume', ...common(cache)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: .*written before outputs recorded the model's content/);
  const records = (p: string) => parseJsonl(readFileSync(p, 'utf8')).slice(1);
  assert.deepEqual(records(out), records(ref));
});
