/**
 * Issue 20, hostile inputs: --update, tar shards and --keep-json given what no run of ours writes,
 * or what a user can still give (the same input twice). Each ends in a clear line or a correct output.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/shared.js';
import { tarOf } from '../helpers/tar.js';
import { imageFolder } from '../helpers/update.js';
import { tempDir } from '../helpers/tmp.js';

let cache = '';
const model = () => ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache];

before(() => {
  cache = join(tempDir('spp-hostile20-'), 'cache');
});

async function cli(args: string[], codes = [0]) {
  const r = await runCli([...args, ...model()], { killAfterMs: 60_000 });
  assert.ok(codes.includes(r.code!), `exit ${r.code}: ${r.stderr}`);
  return r;
}

test('--update over inputs listed twice counts no negative drops, and a copy left out is one row dropped', async () => {
  const dir = tempDir('spp-hostile20-');
  const images = await imageFolder(dir, [1, 2]);
  const [a, b] = [join(images, 'img-001.png'), join(images, 'img-002.png')];
  const out = join(dir, 'feats.jsonl');
  await cli([a, a, b, '-o', out]);
  const same = await cli([a, a, b, '-o', out, '--update']);
  assert.doesNotMatch(same.stderr, /-\d+ dropped/, same.stderr);
  const fewer = await cli([a, b, '-o', out, '--update']);
  assert.match(fewer.stderr, /2 reused, 0 added, 0 redone, 1 dropped/, fewer.stderr);
  const more = await cli([a, a, a, b, '-o', out, '--update']);
  assert.match(more.stderr, /4 reused, 0 added, 0 redone, 0 dropped/, more.stderr);
  const fresh = join(dir, 'fresh.jsonl');
  await cli([a, a, a, b, '-o', fresh]);
  const body = (f: string) => readFileSync(f, 'utf8').split('\n').slice(0, -2).join('\n');
  assert.equal(body(out), body(fresh), 'the updated output is a fresh run\'s');
});

test('--update and merge name a damaged manifest line as such, not as an interrupted run to --resume; nothing is changed', async () => {
  const dir = tempDir('spp-hostile20-');
  const images = await imageFolder(dir, [1, 2, 3]);
  const inputs = [1, 2, 3].map((s) => join(images, `img-00${s}.png`));
  const out = join(dir, 'feats.npy');
  const manifest = join(dir, 'feats.manifest.jsonl');
  await cli([...inputs, '-o', out]);
  const lines = readFileSync(manifest, 'utf8').split('\n');
  for (const bad of ['garbage', `${lines[2]!.slice(0, -1)},"json":{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`]) {
    writeFileSync(manifest, [...lines.slice(0, 2), bad, ...lines.slice(3)].join('\n'));
    const before = [readFileSync(out), readFileSync(manifest)];
    for (const run of [() => cli([...inputs, '-o', out, '--update'], [1, 2]), () => runCli(['merge', out, '-o', join(dir, 'm.npy')])]) {
      const r = await run();
      const error = r.stderr.trim().split('\n').find((l) => l.startsWith('spp-extract: error:')) ?? '';
      assert.match(error, /feats\.manifest\.jsonl line 3 .*edited or damaged/, r.stderr);
      assert.doesNotMatch(error, /--resume/, r.stderr);
    }
    assert.deepEqual([readFileSync(out), readFileSync(manifest)], before, 'the output is left as it was');
  }
});

test('an archive whose name is not UTF-8, listed with -0, is one clear failure naming it, not an image that does not decode', async () => {
  const dir = tempDir('spp-hostile20-');
  const images = await imageFolder(dir, [1]);
  const name = Buffer.concat([Buffer.from(join(dir, 'bad')), Buffer.from([0xff]), Buffer.from('.tar')]);
  writeFileSync(name, await tarOf([{ header: { name: 'k1.png' }, body: readFileSync(join(images, 'img-001.png')) }]));
  const out = join(dir, 'feats.jsonl');
  const r = await runCli(['-0', '-', '-o', out, ...model()], { stdin: Buffer.concat([name, Buffer.from([0])]), killAfterMs: 60_000 });
  assert.equal(r.code, 2, r.stderr);
  const failure = readFileSync(out, 'utf8').split('\n').map((l) => (l ? JSON.parse(l) : {})).find((l) => l.type === 'failure');
  assert.ok(failure, r.stderr);
  assert.match(failure.error, /bad\\xff\.tar: .*not UTF-8/, failure.error);
  assert.doesNotMatch(failure.error, /image format/);
});
