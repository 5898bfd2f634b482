/**
 * How the CLI takes its arguments, checked in-process through main() (the same code the binary
 * runs; its process-level behaviour, exit statuses included, is test/e2e/): bad values fail
 * before any work, naming the option and the value, exit 1, nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runMain } from '../helpers/main.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const TINY = ['--model', fixture('tiny-layers'), '--backend', 'wasm'];
const MODEL = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];
const tmp = () => tempDir('spp-cli-options-');

test('bad options fail before any work, naming the option and the value (exit 1, no output written)', async () => {
  const dir = tmp();
  const out = join(dir, 'x.npy');
  const img = fixture('images', 'red-64x48.png');
  const cases: [string[], RegExp][] = [
    [['--levels', '0'], /--levels .*got '0'/],
    [['--levels', 'x'], /--levels .*got 'x'/],
    [['--levels', '1,,2'], /--levels .*got '1,,2'/],
    [['--pool', 'median'], /--pool.*median/],
    [['--normalize', 'l3'], /--normalize.*l3/],
    [['--size', '0'], /--size .*got '0'/],
    [['--backend', 'gpu'], /--backend.*gpu/],
    [['--input-range', '1,0'], /--input-range .*got '1,0'/],
    [['--background', 'teal'], /--background .*got 'teal'/],
    [['--format', 'csv'], /--format.*csv/],
  ];
  for (const [extra, pattern] of cases) {
    const r = await runMain([img, '-o', out, ...TINY, ...extra]);
    assert.equal(r.code, 1, `${extra.join(' ')}: exit code`);
    assert.match(r.stderr, pattern, `${extra.join(' ')}: message`);
    assert.ok(!existsSync(out), `${extra.join(' ')}: no output written`);
  }
  const unknownModel = await runMain([img, '-o', out, '--model', 'mobilenet_v9_1.0']);
  assert.equal(unknownModel.code, 1);
  assert.match(unknownModel.stderr, /--model: 'mobilenet_v9_1.0' is neither a known model/);
  const unwritable = await runMain([img, '-o', '/nonexistent-dir/x.npy', ...TINY]);
  assert.equal(unwritable.code, 1);
  assert.match(unwritable.stderr, /-o \/nonexistent-dir\/x\.npy: folder '\/nonexistent-dir' does not exist/);
  const badExt = await runMain([img, '-o', join(dir, 'x.csv'), ...TINY]);
  assert.match(badExt.stderr, /cannot tell the format/);
  writeFileSync(out, 'keep me');
  const exists = await runMain([img, '-o', out, ...TINY]);
  assert.equal(exists.code, 1);
  assert.match(exists.stderr, /already exist.*--resume.*--force to overwrite/);
  assert.equal(readFileSync(out, 'utf8'), 'keep me');
});

test('options validation: --shard, --dtype, --resume, merge', async () => {
  const dir = tmp();
  const img = fixture('images', 'red-64x48.png');
  const cases: [string[], RegExp, NodeJS.ProcessEnv?][] = [
    [['--shard', '0/3'], /--shard must be K\/N .*got '0\/3'/],
    [['--shard', '4/3'], /--shard must be K\/N .*got '4\/3'/],
    [['--shard', 'x'], /--shard must be K\/N .*got 'x'/],
    [['--shard', 'auto/3'], /'auto' needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX/],
    [['--shard', 'auto/3'], /--shard .*K = 4/, { JOB_COMPLETION_INDEX: '3' }],
    [['--dtype', 'float64'], /--dtype.*float64/],
    [['--dtype', 'float16', '-o', join(dir, 'x.json')], /--dtype float16 applies to \.npy output only/],
    [['--resume', '-o', '-'], /--resume needs a file for -o, got stdout/],
    [['--resume', '--force'], /--resume and --force contradict/],
  ];
  for (const [extra, pattern, env] of cases) {
    const r = await runMain([img, '-o', join(dir, 'x.npy'), ...MODEL, ...extra], { env: { SLURM_ARRAY_TASK_ID: undefined, SLURM_ARRAY_TASK_MIN: undefined, JOB_COMPLETION_INDEX: undefined, ...env } });
    assert.equal(r.code, 1, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern, extra.join(' '));
  }
  const noShard = await runMain(['merge', fixture('images', 'red-64x48.png'), '-o', join(dir, 'm.npy')]);
  assert.equal(noShard.code, 1);
  assert.match(noShard.stderr, /merge: cannot tell the format of the shard .*red-64x48\.png from its extension: \.npy, \.jsonl or \.json/);
  writeFileSync(join(dir, 'lone.npy'), '');
  const noManifest = await runMain(['merge', join(dir, 'lone.npy'), '-o', join(dir, 'm.npy')]);
  assert.equal(noManifest.code, 1);
  assert.match(noManifest.stderr, /merge: .*lone\.npy has no manifest/);
});

