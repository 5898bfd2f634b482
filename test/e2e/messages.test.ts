/**
 * What the command line says when a call is wrong or a run fails: every error with the
 * `spp-extract: error:` prefix (commander's too), `help FOO`, contradictory flags refused before
 * anything is written, merge's advice (no --resume there) and -q, "finish with --resume" only
 * where there is something to resume, and the --grid advice. The checker itself:
 * test/unit/strict-options.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { nodeIo, type OutputIo } from '../../src/output/io.js';
import { runCli } from '../helpers/cli.js';
import { runMain } from '../helpers/main.js';
import { fixture, missingShared, sharedPath } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = () => tempDir('spp-messages-');
const IMG = fixture('images', 'red-64x48.png');
let TINY: string[] = [];

before(() => {
  TINY = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', tmp()];
});

test("commander's errors carry the spp-extract: prefix and keep the --help pointer", async () => {
  const env = { XDG_CACHE_HOME: tmp() };
  const unknown = await runCli(['--bogus'], { env });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^spp-extract: error: unknown option '--bogus'\n.*\n?\(spp-extract --help lists the options\)\n$/);
  const missing = await runCli(['merge', 'a.npy'], { env });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^spp-extract: error: required option '-o, --output <path>' not specified\n\(spp-extract help merge lists the options\)\n$/);
  const value = await runMain(['info', '--pool']);
  assert.match(value.stderr, /^spp-extract: error: option '--pool <mode>' argument missing\n\(spp-extract help info lists the options\)\n$/);
});

test("help FOO: unknown command, the commands, exit 1 (not the main help with exit 0)", async () => {
  const r = await runCli(['help', 'foo'], { env: { XDG_CACHE_HOME: tmp() } });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, "spp-extract: error: unknown command 'foo' (the commands: extract, info, merge, fit-pca, models)\n(spp-extract --help lists the options)\n");
  // The known ones still print their help.
  for (const known of ['merge', 'extract', 'fit-pca']) assert.equal((await runCli(['help', known])).code, 0, known);
});

test('contradictory flags: exit 1 before anything is written, naming both flags and values', async () => {
  const cases: [string[], RegExp][] = [
    [['--size', '448', '--no-resize'], /--size 448 and --no-resize contradict each other/],
    [['--engine', 'onnx', '--backend', 'wasm'], /--backend wasm and --engine onnx contradict each other/],
    [['--pool', 'max', '--gem-p', '5'], /--gem-p 5 applies to --pool gem only \(--pool is max\)/],
    [['--box-format', 'xywh'], /--box-format xywh applies to --boxes only/],
    [['--max-side', '100', '--size', '448'], /--max-side 100 is below --size 448/],
  ];
  for (const [flags, message] of cases) {
    const dir = tmp();
    const r = await runMain([IMG, '-o', join(dir, 'x.npy'), ...TINY, ...flags]);
    assert.equal(r.code, 1, flags.join(' '));
    assert.match(r.stderr, new RegExp(`^spp-extract: error: .*${message.source}.*\\n\\(spp-extract --help lists the options\\)\\n$`), flags.join(' '));
    assert.deepEqual(readdirSync(dir), [], `${flags.join(' ')}: nothing written`);
  }
  // The defaults of the other flag never count: --max-side alone below the default size, --backend alone.
  const dir = tmp();
  const fine = await runMain([IMG, '-o', join(dir, 'x.npy'), ...TINY.filter((a) => a !== '--engine' && a !== 'onnx'), '--max-side', '100', '--backend', 'wasm', '-q']);
  assert.equal(fine.code, 0, fine.stderr);
});

test('merge: an existing output suggests --force only; -q silences the summary; "already exist" agrees in number', async () => {
  const dir = tmp();
  for (const k of [1, 2]) {
    const r = await runMain([fixture('images'), '--shard', `${k}/2`, '-o', join(dir, `s-${k}.npy`), ...TINY, '-q']);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
  }
  const out = join(dir, 'all.npy');
  const shards = [join(dir, 's-1.npy'), join(dir, 's-2.npy')];
  const quiet = await runMain(['merge', ...shards, '-o', out, '-q']);
  assert.ok(quiet.code === 0 || quiet.code === 2, quiet.stderr);
  assert.ok(!/merged/.test(quiet.stderr), `-q: no summary, got ${quiet.stderr}`);
  const again = await runMain(['merge', ...shards, '-o', out]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /all\.npy, .*all\.manifest\.jsonl already exist; use --force to overwrite\n/);
  assert.ok(!again.stderr.includes('--resume'), again.stderr);
  const loud = await runMain(['merge', ...shards, '-o', out, '--force']);
  assert.match(loud.stderr, /^spp-extract: merged 2 shards: /m);
  // One file in the way: "already exists".
  const one = await runMain([IMG, '-o', join(dir, 's-1.json'), ...TINY, '-q']);
  assert.equal(one.code, 0, one.stderr);
  const oneAgain = await runMain([IMG, '-o', join(dir, 's-1.json'), ...TINY]);
  assert.match(oneAgain.stderr, /s-1\.json already exists; use --resume to finish an interrupted run or --force to overwrite/);
});

/** The output layer's operations, with `fail` deciding which open or write throws EIO. */
function failing(fail: { open?: (path: string) => boolean; write?: boolean }): OutputIo {
  const eio = () => Object.assign(new Error('EIO: injected'), { code: 'EIO' });
  return {
    ...nodeIo,
    open: async (path, flags) => {
      if (fail.open?.(path)) throw eio();
      return nodeIo.open(path, flags);
    },
    write: async (...args) => {
      if (fail.write) throw eio();
      return nodeIo.write(...args);
    },
  };
}

test('"finish with --resume" only when the run left something to resume, and never for merge', async () => {
  const dir = tmp();
  // The first file cannot be created: nothing on disk, nothing to resume.
  const never = await runMain([IMG, '-o', join(dir, 'a.npy'), ...TINY], { io: failing({ open: () => true }) });
  assert.equal(never.code, 1);
  assert.match(never.stderr, /^spp-extract: error: -o .*a\.npy: cannot create .*input\/output error \(EIO\)\n$/m);
  assert.ok(!never.stderr.includes('--resume'), never.stderr);
  assert.deepEqual(readdirSync(dir).filter((f) => !f.endsWith('.lock')), []);
  // A write fails after the temp files exist: those are kept, and --resume finishes the run.
  const cut = await runMain([IMG, '-o', join(dir, 'b.npy'), ...TINY], { io: failing({ write: true }) });
  assert.equal(cut.code, 1);
  assert.match(cut.stderr, /what is on disk is kept: fix the cause, then finish with --resume/);
  // merge has no --resume, whatever failed.
  for (const k of [1, 2]) await runMain([IMG, fixture('images', 'noise-100x70.jpg'), '--shard', `${k}/2`, '-o', join(dir, `s-${k}.npy`), ...TINY, '-q']);
  const merge = await runMain(['merge', join(dir, 's-1.npy'), join(dir, 's-2.npy'), '-o', join(dir, 'm.npy')], { io: failing({ write: true }) });
  assert.equal(merge.code, 1, merge.stderr);
  assert.ok(!merge.stderr.includes('--resume'), merge.stderr);
});

test('--grid: the small-tile warning gives the levels and the --size that fit the grid; at that size it is quiet', async () => {
  const dir = tmp();
  // The tiny model's map has 1 cell per 4 px: at --size 16 a 2x2 tile has 2 cells, below level 4's bins.
  const small = await runMain([IMG, '--grid', '2x2', '--size', '16', '-o', join(dir, 'a.npy'), ...TINY]);
  assert.equal(small.code, 0, small.stderr);
  assert.match(small.stderr, /spp-extract: warning: --grid 2x2: a tile of .*red-64x48\.png spans \d×\d cells of the feature map, fewer than the finest level's 4×4 bins, so its bins repeat cells; every tile gets distinct bins with --levels 1,2, or with --size 32 \(said once\)/);
  assert.ok(!small.stderr.includes('small objects'), 'no small-object advice for a grid');
  for (const fix of [['--size', '32'], ['--size', '16', '--levels', '1,2']]) {
    const r = await runMain([IMG, '--grid', '2x2', ...fix, '-o', join(dir, `${fix.join('')}.npy`), ...TINY]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stderr.includes('warning'), `${fix.join(' ')}: ${r.stderr}`);
  }
});

test("--help's --grid example does not warn with the default model (real weights)", async (t) => {
  const skip = missingShared('models', 'keras-mobilenet_v1_0.25_224');
  if (skip) return t.skip(skip);
  const dir = tmp();
  const model = ['--model', sharedPath('models', 'keras-mobilenet_v1_0.25_224'), '--cache-dir', tmp()];
  const help = await runCli(['--help']);
  assert.match(help.stdout, /spp-extract images\/ --grid 2x2 --size 448 -o quadrants\.npy/);
  const example = await runMain([fixture('images'), '--grid', '2x2', '--size', '448', '-o', join(dir, 'q.npy'), ...model]);
  assert.ok(example.code === 0 || example.code === 2, example.stderr);
  assert.ok(!example.stderr.includes('warning: --grid'), example.stderr);
  // Without --size 448 (the README's old example) it warns, with advice that fits MobileNet's stride 32.
  const plain = await runMain([fixture('images'), '--grid', '2x2', '-o', join(dir, 'p.npy'), ...model]);
  assert.match(plain.stderr, /warning: --grid 2x2: .*--levels 1,2, or with --size 256 \(said once\)/);
});
