/**
 * The command line as a user meets it: --help / help [command] / --version, usage without
 * arguments, what loads at start-up, errors that name the flag, hints and warnings about options,
 * the summary line, merge globs, the header's modelFormat. The library's property-named errors,
 * plurals and the progress line: test/unit/options.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { headerDifferences, type RunHeader } from '../../src/output/index.js';
import { BIN, runCli } from '../helpers/cli.js';
import { runMain } from '../helpers/main.js';
import { REPO_ROOT, fixture, missingShared, sharedPath } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const TINY = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1'];
const tmp = () => tempDir('spp-usage-');
const IMG = fixture('images', 'red-64x48.png');

test('--version, --help with examples and the exit codes, help [command], help extract', async () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
  const v = await runCli(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), pkg.version);
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Examples:\n  spp-extract images\/ -o feats\.npy/);
  for (const code of ['0', '1', '2', '130', '141']) assert.match(help.stdout, new RegExp(`\\n  ${code} +\\S`), `exit ${code}`);
  assert.match(help.stdout, /--levels <list> .*\(default: 1,2,4\)/s);
  assert.equal((await runCli(['help'])).stdout, help.stdout, 'help = --help');
  assert.equal((await runCli(['help', 'extract'])).stdout, help.stdout, 'help extract = --help');
  const info = await runCli(['help', 'info']);
  assert.equal(info.code, 0);
  assert.equal((await runCli(['info', '--help'])).stdout, info.stdout);
  for (const used of ['--layers', '--json', '--model', '--levels', '--size', '--max-side', '--engine']) assert.ok(info.stdout.includes(used), used);
  for (const unused of ['--background', '--fail-on', '--max-input-pixels', '--dtype', '--output', '--decode-ahead', '--resume']) {
    assert.ok(!info.stdout.includes(unused), `info --help does not list ${unused}`);
  }
  const merge = await runCli(['help', 'merge']);
  assert.match(merge.stdout, /-o, --output <path> +the merged output, in the shards' format/);
  assert.ok(!merge.stdout.includes('--levels'));
});

test('no arguments with stdout in a terminal: the usage on stderr and exit 1, not "-o is required"', async () => {
  const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
  Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
  let r;
  try {
    r = await runMain([]);
  } finally {
    if (tty) Object.defineProperty(process.stdout, 'isTTY', tty);
    else delete (process.stdout as { isTTY?: boolean }).isTTY;
  }
  assert.equal(r.code, 1);
  const { stderr } = r;
  assert.match(stderr, /^Usage: spp-extract \[options\] \[inputs\.\.\.\]/);
  assert.match(stderr, /Exit codes:/);
  assert.ok(!stderr.includes('-o is required'));
});

test('--help, --version and merge load no model runtime (tfjs, ONNX Runtime) and no image decoder', () => {
  const RUNTIMES = '/tfjs|onnxruntime|sharp|ora/';
  // ES module imports (a resolve hook) and CommonJS requires (sharp and onnxruntime-node are required).
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c);
    if (${RUNTIMES}.test(r.url)) process.stderr.write('LOADED ' + r.url + '\\n'); return r; }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));`;
  const requireHook = join(tmp(), 'require-hook.cjs');
  writeFileSync(requireHook, `const Module = require('node:module'); const load = Module._load;
    Module._load = function (request, ...rest) { if (${RUNTIMES}.test(request)) process.stderr.write('LOADED ' + request + '\\n'); return load.call(this, request, ...rest); };`);
  const run = (args: string[]) =>
    spawnSync(process.execPath, ['--require', requireHook, '--import', `data:text/javascript,${encodeURIComponent(register)}`, BIN, ...args], { encoding: 'utf8' });
  for (const args of [['--help'], ['--version'], ['help', 'info'], ['merge', join(tmp(), 'none.npy'), '-o', join(tmp(), 'm.npy')]]) {
    const r = run(args);
    assert.ok(!/LOADED/.test(r.stderr), `${args.join(' ')}: ${r.stderr}`);
  }
  const info = run(['info', ...TINY]);
  assert.match(info.stderr, /LOADED .*onnxruntime/, 'the hook does see a model runtime when one loads');
  const extract = run([IMG, '-o', join(tmp(), 'one.npy'), ...TINY, '-q']);
  assert.equal(extract.status, 0, extract.stderr);
  assert.match(extract.stderr, /LOADED sharp\n/, 'and sees the decoder, which is required, not imported');
});

test('CLI errors name the flag (the library side: test/unit/options.test.ts)', async () => {
  const cli = await runCli([IMG, '-o', join(tmp(), 'x.npy'), ...TINY, '--max-side', '0']);
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /^spp-extract: error: --max-side must be a positive integer, got '0'\n\(spp-extract --help lists the options\)\n$/);
  const info = await runCli(['info', ...TINY, '--levels', 'x']);
  assert.match(info.stderr, /--levels must be .*got 'x'\n\(spp-extract help info lists the options\)/);
});

test('--format that contradicts the extension is an error; a name without a known extension takes it', async () => {
  const dir = tmp();
  const r = await runCli([IMG, '-o', join(dir, 'x.npy'), ...TINY, '--format', 'json']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--format json contradicts -o .*x\.npy/);
  const same = await runCli([IMG, '-o', join(dir, 'y.jsonl'), ...TINY, '--format', 'jsonl', '-q']);
  assert.equal(same.code, 0, same.stderr);
  const other = await runCli([IMG, '-o', join(dir, 'z.out'), ...TINY, '--format', 'jsonl', '-q']);
  assert.equal(other.code, 0, other.stderr);
  assert.equal(JSON.parse(readFileSync(join(dir, 'z.out'), 'utf8').split('\n')[0]).type, 'header');
});

test('info: arithmetic with parentheses, the feature map size; a warning when levels are finer than the map', async () => {
  const r = await runCli(['info', ...TINY]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /feature map\s+56 × 56 at a 224 × 224 input/);
  assert.match(r.stdout, /descriptor length\s+126 = 6 × \(1 \+ 4 \+ 16\)/);
  assert.equal(r.stderr, '', 'no warning at the default levels');
  const one = await runCli(['info', ...TINY, '--levels', '1', '--json']);
  assert.deepEqual(JSON.parse(one.stdout).mapSize, { input: 224, height: 56, width: 56 });
  const fine = await runCli(['info', ...TINY, '--size', '16', '--levels', '8,2,1']);
  assert.match(fine.stdout, /feature map\s+4 × 4 at a 16 × 16 input/);
  assert.match(fine.stderr, /^spp-extract: warning: --levels 8: more bins per side than the feature map has cells \(4×4 at a 16×16 input\)/);
  const run = await runCli([IMG, '-o', join(tmp(), 'w.npy'), ...TINY, '--size', '16', '--levels', '8,2,1', '-q']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /warning: --levels 8: more bins/, 'the run warns too, even with -q');
});

test('a hint when a layers model probably expects [0, 1] (Darknet by name or by LeakyReLU); not with --input-range', async (t) => {
  const dir = tmp();
  const darknet = join(dir, 'darknet-like');
  cpSync(fixture('tiny-layers'), darknet, { recursive: true });
  const r = await runCli(['info', '--model', darknet, '--engine', 'onnx', '--threads', '1', '--cache-dir', join(dir, 'cache')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^spp-extract: hint: this model probably expects pixels in \[0, 1\], not the layers-model default \[-1, 1\]: its name says Darknet.*--input-range 0,1 \(a guess/m);
  const given = await runCli(['info', '--model', darknet, '--engine', 'onnx', '--threads', '1', '--cache-dir', join(dir, 'cache'), '--input-range', '0,1']);
  assert.equal(given.stderr, '', 'no hint once the range is given');
  const quiet = await runCli([IMG, '-o', join(dir, 'q.npy'), '--model', darknet, '--engine', 'onnx', '--threads', '1', '--cache-dir', join(dir, 'cache'), '-q']);
  assert.equal(quiet.stderr, '', '-q keeps hints quiet');
  const skip = missingShared('models', 'darknet-tiny-imagenet');
  if (skip) return t.skip(skip);
  // Named plainly: the LeakyReLU layers give it away.
  symlinkSync(sharedPath('models', 'darknet-tiny-imagenet'), join(dir, 'plain'));
  const leaky = await runCli(['info', '--model', join(dir, 'plain'), '--engine', 'onnx', '--threads', '1']);
  assert.equal(leaky.code, 0, leaky.stderr);
  assert.match(leaky.stderr, /hint: .*LeakyReLU activations.*--input-range 0,1/);
});

test('the summary line says "1 row" (plural and progressText themselves: test/unit/options.test.ts)', async () => {
  const r = await runCli([IMG, '-o', join(tmp(), 'one.npy'), ...TINY]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /spp-extract: done: 1 row, 0 failed, /);
});

test('NO_COLOR: the spinner draws no colour (with FORCE_COLOR it would)', () => {
  const script = `
    import { createReporter } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'src', 'cli', 'progress.js'))};
    let out = '';
    const stream = { isTTY: true, columns: 80, write: (s) => ((out += s), true), cursorTo() {}, clearLine() {}, moveCursor() {}, on() {}, once() {}, removeListener() {}, off() {} };
    const r = await createReporter({ quiet: false, stream });
    r.start(2); r.update({ done: 2, total: 2, imagesDone: 2, rows: 2, failures: 0, elapsedMs: 10 }); r.stop();
    process.stdout.write(JSON.stringify(out));`;
  const run = (env: NodeJS.ProcessEnv) => {
    const { CI: _ci, NO_COLOR: _nc, ...base } = process.env;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...base, FORCE_COLOR: '1', TERM: 'xterm', ...env } });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as string;
  };
  // eslint-disable-next-line no-control-regex
  const colour = /\x1b\[3\dm/;
  assert.match(run({}), colour, 'coloured without NO_COLOR');
  assert.doesNotMatch(run({ NO_COLOR: '1' }), colour);
});

test('merge expands globs like the main command; no match is an error', async () => {
  const dir = tmp();
  for (const k of [1, 2]) {
    const r = await runCli([fixture('images'), '-o', join(dir, `part-${k}.npy`), ...TINY, '--shard', `${k}/2`, '-q']);
    assert.ok(r.code === 0 || r.code === 2, r.stderr);
  }
  const m = await runCli(['merge', join(dir, 'part-*.npy'), '-o', join(dir, 'all.npy')]);
  assert.equal(m.code, 2, m.stderr);
  assert.match(m.stderr, /merged 2 shards: 4 rows, 1 failed/);
  const none = await runCli(['merge', join(dir, 'nope-*.npy'), '-o', join(dir, 'x.npy')]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no files match '.*nope-\*\.npy'/);
});

test('the header names the model format modelFormat; a run begun when it was `format` still resumes', async () => {
  const dir = tmp();
  const out = join(dir, 'run.jsonl');
  const args = [fixture('images'), '-o', out, ...TINY, '-q'];
  assert.equal((await runCli(args)).code, 2);
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
  const header = JSON.parse(lines[0]);
  assert.equal(header.modelFormat, 'layers');
  assert.ok(!('format' in header));
  // As an older version wrote it, cut short after two records.
  writeFileSync(out, [lines[0].replace('"modelFormat":', '"format":'), lines[1], lines[2]].join('\n') + '\n');
  const resumed = await runCli([...args, '--resume']);
  assert.equal(resumed.code, 2, resumed.stderr);
  const after = readFileSync(out, 'utf8').trimEnd().split('\n');
  assert.deepEqual(after.slice(1), lines.slice(1), 'the same records and summary');
  const base = header as RunHeader;
  assert.deepEqual(headerDifferences({ ...base, modelFormat: undefined, format: 'layers' } as unknown as RunHeader, base), []);
  assert.deepEqual(headerDifferences(base, { ...base, levels: [6, 3, 2, 1] }), ['--levels: [1,2,4] before, [6,3,2,1] now']);
  assert.deepEqual(headerDifferences(base, { ...base, modelFormat: 'graph' }), ['modelFormat: "layers" before, "graph" now']);
});
