import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { shardOfPath } from '../../src/inputs/shard.js';
import { runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const TINY = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '-q'];
const tmp = () => tempDir('spp-inputs-e2e-');
/** The CLI with its caches in a temp folder, never the user's. */
const cli = (args: string[], opts: { stdin?: string | Buffer; cwd?: string } = {}) => {
  const home = tmp();
  return runCli(args, { ...opts, env: { HOME: home, XDG_CACHE_HOME: join(home, 'cache'), SPP_EXTRACT_CACHE: join(home, 'cache') } });
};

test('a mistyped input folder is fatal: exit 1 naming it, nothing written; the corrected run then just works', async () => {
  const dir = tmp();
  const out = join(dir, 'x.npy');
  const typo = await cli([join(dir, 'nodir'), fixture('images', 'red-64x48.png'), '-o', out, ...TINY]);
  assert.equal(typo.code, 1, typo.stderr);
  assert.match(typo.stderr, /^spp-extract: error: no such file or folder: '.*nodir'; inputs named on the command line must exist \(nothing written\)\n$/);
  assert.deepEqual(readdirSync(dir), [], 'no output, no manifest, no lock left');
  const fixed = await cli([fixture('images'), '-o', out, ...TINY]);
  assert.equal(fixed.code, 2, fixed.stderr); // not-an-image.jpg is a recorded failure
  assert.deepEqual(readdirSync(dir).sort(), ['x.manifest.jsonl', 'x.npy']);
  // --resume with a typo: refused the same way, the output left as it was.
  const before = [readFileSync(out), readFileSync(join(dir, 'x.manifest.jsonl'))];
  const resumed = await cli([join(dir, 'nodir'), '-o', out, '--resume', ...TINY]);
  assert.equal(resumed.code, 1, resumed.stderr);
  assert.match(resumed.stderr, /no such file or folder: '.*nodir'/);
  assert.deepEqual([readFileSync(out), readFileSync(join(dir, 'x.manifest.jsonl'))], before);
  assert.deepEqual(readdirSync(dir).sort(), ['x.manifest.jsonl', 'x.npy']);
});

test('inputs that name no images (an empty folder, a folder of other files, an empty stdin) are fatal: exit 1, nothing written', async () => {
  const dir = tmp();
  const empty = join(dir, 'empty');
  const texts = join(dir, 'texts');
  mkdirSync(empty);
  mkdirSync(texts);
  writeFileSync(join(texts, 'notes.txt'), 'x');
  const outDir = join(dir, 'out');
  mkdirSync(outDir);
  for (const [args, why] of [
    [[empty], `folder '${empty}' holds no image files`],
    [[texts, empty], `folder '${texts}' holds no image files; folder '${empty}' holds no image files`],
    [['-'], 'stdin listed no paths'],
  ] as const) {
    for (const ext of ['npy', 'jsonl', 'json']) {
      const r = await cli([...args, '-o', join(outDir, `x.${ext}`), ...TINY], { stdin: '' });
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.startsWith(`spp-extract: error: the inputs name no images (${why}); nothing written.`), r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }
  }
  assert.deepEqual(readdirSync(outDir), []);
});

test('a missing path read from stdin stays that input\'s recorded failure; a shard that gets none of a non-empty list writes a valid empty output', async () => {
  const dir = tmp();
  const red = fixture('images', 'red-64x48.png');
  const list = `${red}\n${join(dir, 'gone.jpg')}\n`;
  const r = await cli(['-', '-o', join(dir, 'all.jsonl'), ...TINY], { stdin: list });
  assert.equal(r.code, 2, r.stderr);
  assert.deepEqual(readJsonl(join(dir, 'all.jsonl')).slice(1, -1).map((l) => l.type === 'row' ? 'row' : l.reason), ['row', 'missing']);

  // One input: the other shard of two gets nothing, and must still write (merge needs every shard).
  const idle = 3 - shardOfPath(red, 2);
  const none = await cli([red, '-o', join(dir, 'part-{shard}.npy'), '--shard', `${idle}/2`, ...TINY]);
  assert.equal(none.code, 0, none.stderr);
  const manifest = readJsonl(join(dir, `part-${idle}.manifest.jsonl`));
  assert.deepEqual(manifest.at(-1), { type: 'summary', rows: 0, failures: 0, complete: true });
  assert.equal(manifest[0].inputs, 1);
});

test('NUL-separated stdin without -0 is fatal, saying to use -0; nothing written', async () => {
  const dir = tmp();
  const list = [fixture('images', 'red-64x48.png'), fixture('images', 'noise-100x70.jpg')].join('\0') + '\0';
  const r = await cli(['-', '-o', join(dir, 'x.npy'), ...TINY], { stdin: list });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^spp-extract: error: the paths on stdin contain NUL bytes: use -0 for a NUL-separated list \(find … -print0 \| spp-extract -0 - -o …\)\n$/);
  assert.deepEqual(readdirSync(dir), []);
  const ok = await cli(['-', '-0', '-o', join(dir, 'x.npy'), ...TINY], { stdin: list });
  assert.equal(ok.code, 0, ok.stderr);
});
