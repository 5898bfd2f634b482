/**
 * Learned projections when things go wrong: options that contradict each other, a projection that
 * does not fit the run, hostile projection files, signals mid-fit and mid-run (then --resume gives
 * an uninterrupted run's bytes). Tiny fixture model and generated images only.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { readProjection } from '../../src/pca/file.js';
import { encodeNpz, type NpzArray } from '../../src/pca/npz.js';
import { BIN, runAndSignal, runCli } from '../helpers/cli.js';
import { REPO_ROOT, fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const N_IMAGES = 120;
const K = 4;
let cache = '';
const model = () => ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache, '-q'];
const manifestOf = (npy: string) => npy.replace(/\.npy$/, '.manifest.jsonl');
const bytes = (p: string) => readFileSync(p);

let imgDir = '';
let work = '';
let rawNpy = '';
let proj = '';
let proj30 = '';
let projected = '';

/** Every file in a folder with its bytes (dot files too). */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, existsSync(join(dir, f)) && !f.endsWith('.fifo') && !f.endsWith('dir.npz') ? bytes(join(dir, f)).toString('base64') : '']));
}

async function ok(args: string[], codes = [0]) {
  const r = await runCli(args, { killAfterMs: 60_000 });
  assert.ok(codes.includes(r.code ?? -1), `exit ${r.code} for ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** Exit 1 and stderr matching `re`; the guard kills a run that hangs. */
async function refused(args: string[], re: RegExp, opts: { stdin?: string } = {}) {
  const r = await runCli(args, { ...opts, killAfterMs: 30_000 });
  assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code} ${r.signal ?? ''}: ${r.stderr}`);
  assert.match(r.stderr, re, args.join(' '));
  return r;
}

before(async () => {
  cache = join(tempDir('spp-pca-safe-'), 'cache');
  work = tempDir('spp-pca-safe-');
  imgDir = join(work, 'images');
  mkdirSync(imgDir);
  await Promise.all(Array.from({ length: N_IMAGES }, (_, i) =>
    sharp({ create: { width: 24 + (i % 13), height: 20 + ((i * 5) % 11), channels: 3, background: { r: (i * 41) % 256, g: (i * 83) % 256, b: (i * 17) % 256 } } })
      .composite([{ input: { create: { width: 7, height: 5, channels: 3, background: { r: 250 - i, g: 30, b: (i * 3) % 256 } } }, left: i % 15, top: i % 9 }])
      .png().toFile(join(imgDir, `${String(i).padStart(3, '0')}.png`))));
  rawNpy = join(work, 'raw.npy');
  proj = join(work, 'proj.npz');
  proj30 = join(work, 'proj30.npz');
  projected = join(work, 'projected.npy');
  await ok([imgDir, '-o', rawNpy, ...model()]);
  await Promise.all([ok(['fit-pca', rawNpy, '--dim', String(K), '-o', proj, '-q']), ok(['fit-pca', rawNpy, '--dim', String(K), '--sample', '30', '-o', proj30, '-q'])]);
  await ok([fixture('images', 'red-64x48.png'), '-o', projected, '--pca', proj, ...model()]);
});

test('contradictory options are refused before anything is read or written', async () => {
  const dir = tempDir('spp-pca-safe-');
  let n = 0;
  const out = () => join(dir, `o${n++}.npy`); // parallel runs, each its own output (and lock)
  const boxes = join(dir, 'b.jsonl');
  writeFileSync(boxes, JSON.stringify({ path: fixture('images', 'red-64x48.png'), boxes: [[0, 0, 5, 5]] }) + '\n');
  const before = snapshot(dir);
  await Promise.all([
    refused([imgDir, '-o', out(), '--pca', proj, '--pca-dim', '3', ...model()], /--pca and --pca-dim contradict/),
    refused([imgDir, '-o', out(), '--whiten', ...model()], /--whiten applies to --pca-dim/),
    refused([imgDir, '-o', out(), '--sample', '5', '--pca', proj, ...model()], /--sample applies to --pca-dim/),
    refused([imgDir, '-o', out(), '--pca-pre', 'sqrt', ...model()], /--pca-pre applies to --pca-dim/),
  ]);
  await Promise.all([
    refused([imgDir, '-o', out(), '--pca-dim', '3', '--shard', '1/2', ...model()], /--pca-dim with --shard/),
    refused(['--boxes', boxes, '-o', out(), '--pca-dim', '3', ...model()], /--pca-dim fits on whole images/),
    refused([imgDir, '--grid', '2x2', '-o', out(), '--pca-dim', '3', ...model()], /--pca-dim fits on whole images/),
    refused([imgDir, '-o', '-', '--pca-dim', '3', ...model()], /--pca-dim writes OUTPUT\.pca\.npz beside the output: give -o a file/),
  ]);
  await Promise.all([
    refused(['fit-pca', imgDir, '--dim', '3', '-o', join(dir, 'p1.bin'), ...model()], /a projection is a \.npz file/),
    refused(['fit-pca', projected, '--dim', '2', '-o', join(dir, 'p1.npz')], /holds projected rows \(made with --pca\)/),
    refused(['fit-pca', imgDir, rawNpy, '--dim', '2', '-o', join(dir, 'p2.npz'), ...model()], /images or \.npy outputs, not both/),
    // 5 fixture inputs, one not an image: 4 usable rows cannot give 4 components.
    refused(['fit-pca', fixture('images'), '--dim', '4', '-o', join(dir, 'p3.npz'), ...model()], /--dim 4 needs more than 4 sample rows, got 4 \(1 sampled inputs failed\)/),
  ]);
  assert.deepEqual(snapshot(dir), before, 'nothing written, no temp or lock file left');
});

test('fit-pca onto an existing projection without --force is refused and the file untouched; with --force it is replaced', async () => {
  const dir = tempDir('spp-pca-safe-');
  const p = join(dir, 'p.npz');
  copyFileSync(proj30, p);
  const before = snapshot(dir);
  await refused(['fit-pca', rawNpy, '--dim', String(K), '-o', p], /already exists; use --force/);
  assert.deepEqual(snapshot(dir), before);
  await ok(['fit-pca', rawNpy, '--dim', String(K), '-o', p, '--force', '-q']);
  assert.ok(bytes(p).equals(bytes(proj)));
  assert.deepEqual(readdirSync(dir), ['p.npz']);
});

test('a projection fitted for other --levels / --pool / --normalize / --model is refused at start, naming what differs; nothing written', async () => {
  const dir = tempDir('spp-pca-safe-');
  const graph = ['--model', fixture('tiny-graph'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache, '-q'];
  const cases: [string[], RegExp][] = [
    [[...model(), '--levels', '1,2'], /--levels: "1,2,4" when fitted, "1,2" now/],
    [[...model(), '--pool', 'avg'], /--pool: "max" when fitted, "avg" now/],
    [[...model(), '--normalize', 'l2'], /--normalize: "none" when fitted, "l2" now/],
    [graph, /--model \(its content\)/],
  ];
  for (let i = 0; i < cases.length; i += 2) {
    await Promise.all(cases.slice(i, i + 2).map(([args, re], j) => refused([imgDir, '-o', join(dir, `o${i + j}.npy`), '--pca', proj, ...args], new RegExp(`--pca .*proj\\.npz was fitted for other descriptors.*${re.source}`))));
  }
  assert.deepEqual(readdirSync(dir), [], 'nothing written, no lock left');
});

test('hostile projection files (truncated, random, K not the arrays\', NaN, missing arrays, FIFO, directory): exit 1, one line naming the file, nothing written', async () => {
  const dir = tempDir('spp-pca-safe-');
  const good = bytes(proj);
  const { meta } = await readProjection(proj);
  const arrays = (over: Partial<Record<string, NpzArray | null>>, k = K, d = 126): [string, NpzArray][] => {
    const all: Record<string, NpzArray | null> = {
      mean: { dtype: '<f4', shape: [d], data: new Float32Array(d) },
      components: { dtype: '<f4', shape: [k, d], data: Float32Array.from({ length: k * d }, (_, i) => (i % (d + 1) === 0 ? 1 : 0)) },
      explained_variance: { dtype: '<f4', shape: [k], data: new Float32Array(k).fill(1) },
      scale: { dtype: '<f4', shape: [k], data: new Float32Array(k).fill(1) },
      metadata: { dtype: 'str', value: JSON.stringify(meta) },
      ...over,
    };
    return Object.entries(all).filter((e): e is [string, NpzArray] => e[1] !== null);
  };
  const files: Record<string, Uint8Array | 'fifo' | 'dir'> = {
    'truncated.npz': good.subarray(0, Math.floor(good.length / 2)),
    'random.npz': Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24),
    'empty.npz': new Uint8Array(0),
    'other-k.npz': encodeNpz(arrays({ metadata: { dtype: 'str', value: JSON.stringify({ ...meta, dim: K + 1 }) } })),
    'nan.npz': encodeNpz(arrays({ components: { dtype: '<f4', shape: [K, 126], data: new Float32Array(K * 126).fill(NaN) } })),
    'no-scale.npz': encodeNpz(arrays({ scale: null })),
    'no-metadata.npz': encodeNpz(arrays({ metadata: null })),
    'k-over-d.npz': encodeNpz(arrays({ metadata: { dtype: 'str', value: JSON.stringify({ ...meta, dim: 200 }) } }, 200)),
    'pipe.npz': 'fifo',
    'dir.npz': 'dir',
  };
  const hostile = join(dir, 'hostile');
  mkdirSync(hostile);
  for (const [name, content] of Object.entries(files)) {
    const p = join(hostile, name);
    if (content === 'fifo') execFileSync('mkfifo', [p]);
    else if (content === 'dir') mkdirSync(p);
    else writeFileSync(p, content);
  }
  // The control: the same arrays with their own metadata are a usable projection.
  const control = join(hostile, 'control.npz');
  writeFileSync(control, encodeNpz(arrays({})));
  await ok([fixture('images', 'red-64x48.png'), '-o', join(dir, 'control.npy'), '--pca', control, ...model()]);
  const out = join(dir, 'out');
  mkdirSync(out);
  const names = Object.keys(files);
  const info = ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache];
  // info --pca reads the file the same way: a few kinds of damage are enough there.
  const runs = [
    ...names.map((name) => ({ name, args: [fixture('images', 'red-64x48.png'), '-o', join(out, `${name}.npy`), '--pca', join(hostile, name), ...model()] })),
    ...['truncated.npz', 'other-k.npz', 'nan.npz', 'pipe.npz', 'dir.npz'].map((name) => ({ name, args: ['info', '--pca', join(hostile, name), '--json', ...info] })),
  ];
  for (let i = 0; i < runs.length; i += 4) {
    await Promise.all(runs.slice(i, i + 4).map(async ({ name, args }) => {
      const r = await refused(args, new RegExp(`^spp-extract: error: .*${name.replace('.', '\\.')}: not a usable projection file: `));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.equal(r.stdout, '');
    }));
  }
  assert.deepEqual(readdirSync(out), [], 'nothing written');
});

/** Spawns the CLI and sends SIGTERM when stderr first matches `when`. */
function termWhen(args: string[], when: RegExp) {
  return new Promise<{ code: number | null; stderr: string; sent: boolean }>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!sent && when.test(stderr)) sent = child.kill('SIGTERM');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr, sent }));
  });
}

test('fit-pca and extract --pca-dim stopped by SIGTERM while describing: exit 130, no .npz, no scratch or temp file', async () => {
  const dir = tempDir('spp-pca-safe-');
  // Without -q: the 'describing' line is progress, which -q silences.
  const loud = model().filter((a) => a !== '-q');
  const [fit, pcaDim] = await Promise.all([
    termWhen(['fit-pca', imgDir, '--dim', '3', '-o', join(dir, 'p.npz'), '--decode-ahead', '1', ...loud], /describing 120 images/),
    termWhen([imgDir, '-o', join(dir, 'feats.npy'), '--pca-dim', '3', '--decode-ahead', '1', ...loud], /describing 120 images/),
  ]);
  for (const r of [fit, pcaDim]) {
    assert.ok(r.sent, 'the signal was sent');
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /not written/);
  }
  assert.deepEqual(readdirSync(dir), [], 'no p.npz, .p.npz.rows.partial, .p.npz.partial, lock, feats.pca.npz or feats.npy');
});

test('--pca runs cut by SIGTERM / SIGKILL then --resume = an uninterrupted run, byte for byte (npy float32 and float16, jsonl, json); resume with another projection refused', async () => {
  const dir = tempDir('spp-pca-safe-');
  const elsewhere = join(dir, 'copy-of-proj.npz');
  copyFileSync(proj, elsewhere);
  const cases = [
    { name: 'a.npy', extra: [], journal: '.a.manifest.jsonl.partial', signal: 'SIGTERM' as const },
    { name: 'h.npy', extra: ['--dtype', 'float16'], journal: '.h.manifest.jsonl.partial', signal: 'SIGKILL' as const },
    { name: 'l.jsonl', extra: [], journal: '.l.jsonl.partial', signal: 'SIGKILL' as const },
    { name: 'j.json', extra: [], journal: '.j.json.journal.partial', signal: 'SIGTERM' as const },
  ];
  const fresh = tempDir('spp-pca-safe-');
  for (let i = 0; i < cases.length; i += 2) {
    await Promise.all(cases.slice(i, i + 2).flatMap((c) => [
      ok([imgDir, '-o', join(fresh, c.name), '--pca', proj, ...c.extra, ...model()]),
      (async () => {
        // The journal grows a batch of projected rows at a time (32): the signal lands with most images to go.
        const cut = await runAndSignal([imgDir, '-o', join(dir, c.name), '--pca', proj, '--decode-ahead', '1', ...c.extra, ...model()], join(dir, c.journal), 32, c.signal);
        assert.ok(cut.sent, `${c.name}: the signal was sent mid-run`);
        if (c.signal === 'SIGTERM') assert.equal(cut.code, 130, cut.stderr);
        else assert.equal(cut.signal, 'SIGKILL');
      })(),
    ]));
  }
  // The first case's partial output: another projection (same K, another sample; or another K) is refused naming --pca.
  // One after the other: both take the output's lock.
  await refused([imgDir, '-o', join(dir, 'a.npy'), '--pca', proj30, '--resume', ...model()], /--pca/);
  await refused([imgDir, '-o', join(dir, 'a.npy'), '--pca-dim', '3', '--resume', ...model()], /--pca/);
  for (let i = 0; i < cases.length; i += 2) {
    await Promise.all(cases.slice(i, i + 2).map((c) =>
      // The projection by content: the same bytes under another path resume the run.
      ok([imgDir, '-o', join(dir, c.name), '--pca', c.name === 'a.npy' ? elsewhere : proj, '--resume', ...c.extra, ...model()])));
  }
  for (const c of cases) {
    assert.ok(bytes(join(dir, c.name)).equals(bytes(join(fresh, c.name))), `${c.name}: resumed = uninterrupted`);
    if (c.name.endsWith('.npy')) assert.ok(bytes(manifestOf(join(dir, c.name))).equals(bytes(manifestOf(join(fresh, c.name)))), `${c.name}: manifests equal`);
  }
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temp, journal or lock file left');
});
