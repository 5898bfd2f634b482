/**
 * Learned projections end to end: fit-pca, extract --pca / --pca-dim, info --pca, the library's
 * fitPca() and createExtractor({ pca }). The numbers are checked against the README formula
 * (numpy where there is one, float64 in this file otherwise); the bytes against the promises
 * (order, shards, outputs as inputs, merge). Runs on the tiny fixture model and generated images;
 * one check uses a real MobileNet on 60 shared photos and skips without ../shared.
 * Refusals, hostile projection files and signals: pca-safety.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { createExtractor, decodeImage, fitPca, readProjection, runExtraction, type Projection } from '../../src/index.js';
import { parseNpyHeader } from '../../src/output/npy.js';
import { runCli } from '../helpers/cli.js';
import { readJsonl } from '../helpers/jsonl.js';
import { NO_NUMPY, hasNumpy, runPython } from '../helpers/python.js';
import { fixture, missingShared, sharedPath } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const N_IMAGES = 48;
const K = 4;
const D = 126;
let cache = '';
const model = () => ['--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache, '-q'];
const manifestOf = (npy: string) => npy.replace(/\.npy$/, '.manifest.jsonl');
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const bytes = (p: string) => readFileSync(p);

let imgDir = '';
let images: string[] = [];
let work = '';
/** The raw run over the images, a projection fitted on all of them (K components, defaults), and one on 30 of them. */
let rawNpy = '';
let proj = '';
let proj30 = '';

async function makeImages(dir: string, n: number, seed = 0): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const paths = Array.from({ length: n }, (_, i) => join(dir, `img-${String(seed + i).padStart(4, '0')}.png`));
  await Promise.all(paths.map((p, j) => {
    const i = seed + j;
    return sharp({ create: { width: 30 + (i % 17), height: 22 + ((i * 7) % 23), channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 13) % 256 } } })
      .composite([{ input: { create: { width: 9, height: 7, channels: 3, background: { r: 255 - ((i * 5) % 256), g: (i * 29) % 256, b: 200 } } }, left: i % 19, top: i % 11 }])
      .png()
      .toFile(p);
  }));
  return paths;
}

async function ok(args: string[], opts: Parameters<typeof runCli>[1] = {}, codes = [0]) {
  const r = await runCli(args, opts);
  assert.ok(codes.includes(r.code ?? -1), `exit ${r.code} for ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** Float32 rows of an .npy written by spp-extract. */
function npyRows(path: string): Float32Array[] {
  const b = bytes(path);
  const h = parseNpyHeader(b);
  const [n, d] = h.shape;
  assert.equal(h.dtype, '<f4');
  const all = new Float32Array(b.buffer.slice(b.byteOffset + h.headerBytes, b.byteOffset + h.headerBytes + n * d * 4));
  return Array.from({ length: n }, (_, i) => all.subarray(i * d, (i + 1) * d));
}

/** The README formula in float64, written out here (not the tool's code): y = scale ⊙ (C·(pre(x) − mean)), then L2. */
function projectHere(p: Projection, x: Float32Array): Float64Array {
  const d = p.meta.descriptor.dim;
  const k = p.meta.dim;
  const v = Float64Array.from(x);
  if (p.meta.pre === 'sqrt') for (let j = 0; j < d; j++) v[j] = Math.sign(v[j]) * Math.sqrt(Math.abs(v[j]));
  if (p.meta.pre !== 'none') {
    const n = Math.hypot(...v);
    for (let j = 0; j < d; j++) v[j] = n > 0 ? v[j] / n : 0;
  }
  const y = new Float64Array(k);
  for (let c = 0; c < k; c++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += p.components[c * d + j] * (v[j] - p.mean[j]);
    y[c] = s * p.scale[c];
  }
  const n = Math.hypot(...y);
  return y.map((t) => (n > 0 ? t / n : 0));
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

const rowLines = (manifest: string) => readJsonl(manifest).filter((l) => l.type === 'row');

before(async () => {
  cache = join(tempDir('spp-pca-'), 'cache');
  work = tempDir('spp-pca-');
  imgDir = join(work, 'images');
  images = await makeImages(imgDir, N_IMAGES);
  rawNpy = join(work, 'raw.npy');
  proj = join(work, 'proj.npz');
  proj30 = join(work, 'proj30.npz');
  const [, quiet] = await Promise.all([ok([imgDir, '-o', rawNpy, ...model()]), ok(['fit-pca', imgDir, '--dim', String(K), '-o', proj, ...model()])]);
  assert.equal(quiet.stderr, '', 'fit-pca -q says nothing when all goes well');
  const loud = await ok(['fit-pca', rawNpy, '--dim', String(K), '--sample', '30', '-o', proj30]);
  assert.match(loud.stderr, /30 rows sampled of \d+ in 1 output[\s\S]*fitting \d+ components on 30 rows[\s\S]*% of the variance kept/, 'without -q: what was sampled, fitted and kept');
});

test('numpy: the .npz holds exactly mean, components, explained_variance, scale (float32) and metadata; --pca rows are the README formula (l2, sqrt, whitened)', async (t) => {
  if (!hasNumpy()) return t.skip(NO_NUMPY);
  const dir = tempDir('spp-pca-');
  const sqrt = join(dir, 'sqrt.npz');
  const white = join(dir, 'white.npz');
  await Promise.all([
    ok(['fit-pca', rawNpy, '--dim', '5', '--pca-pre', 'sqrt', '-o', sqrt]),
    ok(['fit-pca', rawNpy, '--dim', '3', '--whiten', '-o', white]),
  ]);
  const cases = [[proj, 'l2', K, null], [sqrt, 'sqrt', 5, null], [white, 'l2', 3, 10]] as const;
  const outs = cases.map((_, i) => join(dir, `p${i}.npy`));
  await Promise.all(cases.map(([p], i) => ok([imgDir, '-o', outs[i], '--pca', p, ...model()])));
  const code = String.raw`
import json, sys, numpy as np
def check(raw, pz, out, pre):
  f = np.load(pz, allow_pickle=False)
  names = sorted(f.files)
  meta = json.loads(str(f['metadata']))
  shapes = {k: [list(f[k].shape), str(f[k].dtype)] for k in f.files if k != 'metadata'}
  X = np.load(raw).astype(np.float64)
  if pre == 'sqrt': X = np.sign(X) * np.sqrt(np.abs(X))
  if pre != 'none': X = X / np.linalg.norm(X, axis=1, keepdims=True)
  Y = (X - f['mean'].astype(np.float64)) @ f['components'].astype(np.float64).T * f['scale'].astype(np.float64)
  Y = Y / np.linalg.norm(Y, axis=1, keepdims=True)
  got = np.load(out)
  w = meta['whiten']
  ev = f['explained_variance'].astype(np.float64)
  scale_ok = bool(np.allclose(f['scale'], np.ones_like(ev) if w is None else 1 / np.sqrt(ev + w * ev.mean()), rtol=1e-5))
  return {'names': names, 'meta': meta, 'shapes': shapes, 'maxdiff': float(np.abs(Y - got).max()), 'gotshape': list(got.shape),
    'gotdtype': str(got.dtype), 'scaleOk': scale_ok, 'orth': float(np.abs(f['components'].astype(np.float64) @ f['components'].astype(np.float64).T - np.eye(len(ev))).max())}

a = sys.argv[1:]
print(json.dumps([check(*a[i:i + 4]) for i in range(0, len(a), 4)]))
`;
  const results = JSON.parse(runPython(code, cases.flatMap(([p, pre], i) => [rawNpy, p, outs[i], pre])));
  cases.forEach(([, pre, k, whiten], i) => {
    const r = results[i];
    assert.deepEqual(r.names, ['components', 'explained_variance', 'mean', 'metadata', 'scale']);
    assert.deepEqual(r.shapes, { mean: [[D], 'float32'], components: [[k, D], 'float32'], explained_variance: [[k], 'float32'], scale: [[k], 'float32'] });
    assert.equal(r.meta.format, 'spp-extract-pca');
    assert.equal(r.meta.dim, k);
    assert.equal(r.meta.pre, pre);
    assert.equal(r.meta.whiten, whiten);
    assert.equal(r.meta.samples, N_IMAGES);
    assert.equal(r.meta.descriptor.dim, D);
    assert.ok(r.scaleOk, 'scale is ones, or 1/sqrt(λ + alpha·mean λ) when whitened');
    assert.ok(r.orth < 1e-5, `components are orthonormal (${r.orth})`);
    assert.deepEqual([r.gotshape, r.gotdtype], [[N_IMAGES, k], 'float32']);
    assert.ok(r.maxdiff < 1e-5, `${pre}${whiten ? ' whitened' : ''}: max |numpy − tool| = ${r.maxdiff}`);
  });
  const header = readJsonl(manifestOf(outs[0]))[0];
  assert.equal(header.dim, K);
  assert.deepEqual(header.pca, { sha256: sha256(bytes(proj)), dim: K, inputDim: D, pre: 'l2', whiten: null, source: proj });
});

test('fit-pca bytes depend on the sample only: shuffled stdin lists, the raw .npy, its shards together, --sample N = the N lowest-hash paths', async () => {
  const dir = tempDir('spp-pca-');
  const shuffled = [...images].sort((a, b) => sha256(`x${a}`).localeCompare(sha256(`x${b}`)));
  const s1 = join(dir, 's1.npy');
  const s2 = join(dir, 's2.npy');
  await Promise.all([ok([imgDir, '-o', s1, '--shard', '1/2', ...model()]), ok([imgDir, '-o', s2, '--shard', '2/2', ...model()])]);
  const out = (n: string) => join(dir, n);
  const N = 20;
  const lowest = [...images].sort((a, b) => (sha256(a) < sha256(b) ? -1 : 1));
  // An image whose path hashes above the N-th lowest: adding it changes nothing with --sample N.
  let extra = '';
  for (let i = 0; ; i++) {
    extra = join(imgDir, `extra-${i}.png`);
    if (sha256(extra) > sha256(lowest[N - 1])) break;
  }
  copyFileSync(images[0], extra);
  try {
    await Promise.all([
      ok(['fit-pca', '-', '--dim', String(K), '-o', out('shuffled.npz'), ...model()], { stdin: shuffled.join('\n') + '\n' }),
      ok(['fit-pca', rawNpy, '--dim', String(K), '-o', out('fromnpy.npz')]),
    ]);
    await Promise.all([
      ok(['fit-pca', s2, s1, '--dim', String(K), '-o', out('fromshards.npz')]),
    ]);
    await Promise.all([
      ok(['fit-pca', imgDir, '--dim', String(K), '--sample', String(N), '-o', out('sampled.npz'), ...model()]),
      ok(['fit-pca', ...lowest.slice(0, N).reverse(), '--dim', String(K), '-o', out('lowest.npz'), ...model()]),
    ]);
  } finally {
    rmSync(extra); // imgDir is shared by the other tests
  }
  const want = bytes(proj);
  for (const n of ['shuffled.npz', 'fromnpy.npz', 'fromshards.npz']) assert.ok(bytes(out(n)).equals(want), `${n} has the bytes of the fit over the folder`);
  assert.ok(bytes(out('sampled.npz')).equals(bytes(out('lowest.npz'))), '--sample N fits exactly the N paths that hash lowest');
  assert.ok(!bytes(out('sampled.npz')).equals(want), 'and that is another fit than the one over all');
  assert.equal((await readProjection(out('sampled.npz'))).meta.samples, N);
  // The sample of the .npy output: --sample over rows picks the same paths.
  await ok(['fit-pca', rawNpy, '--dim', String(K), '--sample', String(N), '-o', out('npysampled.npz')]);
  assert.ok(bytes(out('npysampled.npz')).equals(bytes(out('sampled.npz'))), '--sample over an output\'s rows = over the images');
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no scratch or temp files left');
});

test('--pca: shards 1/2 + 2/2 (the projection under two paths) merged = one run, npy bytes and manifest; another projection in a shard is refused', async () => {
  const dir = tempDir('spp-pca-');
  const copy = join(dir, 'elsewhere', 'same.npz');
  mkdirSync(join(dir, 'elsewhere'));
  copyFileSync(proj, copy);
  const one = join(dir, 'one.npy');
  await Promise.all([
    ok([imgDir, '-o', one, '--pca', proj, ...model()]),
    ok([imgDir, '-o', join(dir, 'a.npy'), '--shard', '1/2', '--pca', proj, ...model()]),
  ]);
  await Promise.all([
    ok([imgDir, '-o', join(dir, 'b.npy'), '--shard', '2/2', '--pca', copy, ...model()]),
    ok([imgDir, '-o', join(dir, 'c.npy'), '--shard', '2/2', '--pca', proj30, ...model()]),
  ]);
  await ok(['merge', join(dir, 'a.npy'), join(dir, 'b.npy'), '-o', join(dir, 'merged.npy')]);
  assert.ok(bytes(join(dir, 'merged.npy')).equals(bytes(one)), 'merged rows = one run\'s rows, byte for byte');
  assert.deepEqual(readJsonl(join(dir, 'merged.manifest.jsonl')), readJsonl(manifestOf(one)));
  const bad = await runCli(['merge', join(dir, 'a.npy'), join(dir, 'c.npy'), '-o', join(dir, 'bad.npy')]);
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /--pca/);
  assert.ok(!readdirSync(dir).some((f) => f.startsWith('bad')), 'nothing written');
});

test('--pca-dim K: writes OUTPUT.pca.npz (named in the header by its SHA-256), K-column rows; --resume reuses that file, --force refits it', async () => {
  const dir = tempDir('spp-pca-');
  const out = join(dir, 'feats.npy');
  await ok([imgDir, '-o', out, '--pca-dim', String(K), ...model()]);
  const pz = join(dir, 'feats.pca.npz');
  const fitted = bytes(pz);
  assert.ok(fitted.equals(bytes(proj)), '--pca-dim fits what fit-pca fits on the same inputs');
  const header = readJsonl(manifestOf(out))[0];
  assert.deepEqual([header.dim, header.pca.dim, header.pca.sha256, header.pca.inputDim], [K, K, sha256(fitted), D]);
  assert.deepEqual(parseNpyHeader(bytes(out)).shape, [N_IMAGES, K]);
  const rows = bytes(out);
  // --resume reads the file beside the output: put another K-4 projection there and it is what resume compares.
  copyFileSync(proj30, pz);
  const swapped = await runCli([imgDir, '-o', out, '--pca-dim', String(K), '--resume', ...model()]);
  assert.equal(swapped.code, 1, swapped.stderr);
  assert.match(swapped.stderr, /--pca/);
  assert.doesNotMatch(swapped.stderr, /describing/, 'nothing refitted');
  copyFileSync(proj, pz);
  const mtime = statSync(pz).mtimeMs;
  const resumed = await runCli([imgDir, '-o', out, '--pca-dim', String(K), '--resume', ...model()]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /already complete/);
  assert.equal(statSync(pz).mtimeMs, mtime, 'the projection file is reused, not rewritten');
  // --force refits (from the images again: the same bytes) and rewrites the output.
  copyFileSync(proj30, pz);
  await ok([imgDir, '-o', out, '--pca-dim', String(K), '--force', ...model()]);
  assert.ok(bytes(pz).equals(fitted), '--force fitted again');
  assert.ok(bytes(out).equals(rows));
  assert.deepEqual(readdirSync(dir).sort(), ['feats.manifest.jsonl', 'feats.npy', 'feats.pca.npz']);
});

test('regions: --grid and --boxes with --pca give K-column rows = the formula on the raw region rows (projection fitted on a region output)', async () => {
  const dir = tempDir('spp-pca-');
  const some = images.slice(0, 12);
  const boxes = join(dir, 'boxes.jsonl');
  writeFileSync(boxes, some.map((p, i) => JSON.stringify({ path: p, boxes: [[0, 0, 20, 15], [i % 5, 2, 28, 20]] })).join('\n') + '\n');
  const rawGrid = join(dir, 'grid.npy');
  const rawBoxes = join(dir, 'boxes.npy');
  await Promise.all([ok([...some, '--grid', '2x2', '-o', rawGrid, ...model()]), ok(['--boxes', boxes, '-o', rawBoxes, ...model()])]);
  const rp = join(dir, 'regions.npz');
  await ok(['fit-pca', rawGrid, '--dim', '5', '-o', rp]);
  const p = await readProjection(rp);
  assert.equal(p.meta.samples, 12 * 5, 'every grid window is a sample row');
  const pg = join(dir, 'pgrid.npy');
  const pb = join(dir, 'pboxes.jsonl');
  await Promise.all([ok([...some, '--grid', '2x2', '-o', pg, '--pca', rp, ...model()]), ok(['--boxes', boxes, '-o', pb, '--pca', rp, ...model()])]);
  const grid = npyRows(pg);
  const rawG = npyRows(rawGrid);
  assert.equal(grid.length, 60);
  grid.forEach((row, i) => assertClose(row, projectHere(p, rawG[i]), 1e-5, `grid row ${i}`));
  assert.deepEqual(rowLines(manifestOf(pg)).map((l) => [l.index, l.box_index]), rowLines(manifestOf(rawGrid)).map((l) => [l.index, l.box_index]));
  const boxRows = readJsonl(pb).filter((l) => l.type === 'row');
  const rawB = npyRows(rawBoxes);
  assert.equal(boxRows.length, 24);
  boxRows.forEach((l, i) => assertClose(l.descriptor, projectHere(p, rawB[i]), 1e-5, `box row ${i}`));
});

test('library: createExtractor({ pca }) gives unit K-vectors equal to the CLI rows (whole images and region runs); fitPca bytes, sha256, failures', async () => {
  const base = { model: fixture('tiny-layers'), engine: 'onnx' as const, threads: 1, cacheDir: cache };
  const ex = await createExtractor({ ...base, pca: proj });
  try {
    assert.equal(ex.info.dim, K);
    assert.equal(ex.info.pca?.sha256, sha256(bytes(proj)));
    const cliOut = join(tempDir('spp-pca-'), 'p.npy');
    await ok([imgDir, '-o', cliOut, '--pca', proj, ...model()]);
    const cli = npyRows(cliOut);
    for (const i of [0, 17]) {
      const v = await ex.extract(images[i]);
      assert.equal(v.length, K);
      assertClose([Math.hypot(...v)], [1], 1e-6, 'norm');
      assertClose(v, cli[i], 1e-6, `image ${i}`);
    }
    // Region items through runExtraction: rows of K values, the projection of the raw windows.
    const p = await readProjection(proj);
    const rows: Float32Array[] = [];
    await runExtraction([{ index: 0, path: images[3], regions: { kind: 'grid', rows: 2, cols: 2, full: true } }], ex, {
      paths: [], row: async (r) => void rows.push(r.descriptor), failure: async () => undefined, close: async () => undefined, abandon: async () => undefined,
    });
    const raw = await createExtractor(base);
    try {
      const decoded = await decodeImage(images[3]);
      const describeRaw = await raw.regionDescriber(decoded);
      const describeProjected = await ex.regionDescriber(decoded);
      const box: [number, number, number, number] = [0, 0, decoded.originalWidth / 2, decoded.originalHeight / 2];
      const r = describeRaw(box);
      const q = describeProjected(box);
      assert.ok(r.ok && q.ok);
      assertClose(q.descriptor, projectHere(p, r.descriptor), 1e-5, 'regionDescriber row');
      assert.equal(rows.length, 5);
      for (const row of rows) assert.equal(row.length, K, 'region rows are projected');
      assertClose(rows[0], cli[3], 1e-5, 'window 0 (the whole image) = the image row');
    } finally {
      await raw.dispose();
    }
  } finally {
    await ex.dispose();
  }

  const fitted = await fitPca([fixture('images')], { ...base, dim: 2 });
  assert.equal(sha256(fitted.bytes), fitted.projection.sha256);
  assert.deepEqual(fitted.failures.map((f) => f.path.split('/').pop()), ['not-an-image.jpg']);
  assert.equal(fitted.projection.meta.samples, 4);
  assert.equal(fitted.projection.meta.dim, 2);
  const viaCli = join(tempDir('spp-pca-'), 'f.npz');
  const r = await runCli(['fit-pca', fixture('images'), '--dim', '2', '-o', viaCli, ...model()]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /not-an-image\.jpg/);
  assert.ok(bytes(viaCli).equals(Buffer.from(fitted.bytes)), 'the library writes the bytes fit-pca writes');
  await assert.rejects(fitPca([fixture('images')], { ...base, dim: 4 }), /dim 4 needs more than 4 sample rows, got 4/);
});

test('info --pca --json: K, bytes per row, variance kept; applies to the model it was fitted for, not to another (with the differences)', async () => {
  const r = await ok(['info', '--pca', proj, '--json', '--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache]);
  const { pca } = JSON.parse(r.stdout);
  const p = await readProjection(proj);
  assert.equal(pca.dim, K);
  assert.equal(pca.sha256, sha256(bytes(proj)));
  assert.deepEqual(pca.bytesPerRow, { float32: 4 * K, float16: 2 * K });
  assert.equal(pca.varianceKept, p.meta.varianceKept);
  assert.ok(pca.varianceKept > 0 && pca.varianceKept <= 1);
  assert.equal(pca.appliesToTheseOptions, true);
  assert.equal(pca.differences, undefined);
  const other = await ok(['info', '--pca', proj, '--json', '--model', fixture('tiny-layers'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache, '--levels', '1,2']);
  const o = JSON.parse(other.stdout).pca;
  assert.equal(o.appliesToTheseOptions, false);
  assert.equal(o.differences.length, 1);
  assert.match(o.differences[0], /^--levels/);
  const graph = await ok(['info', '--pca', proj, '--json', '--model', fixture('tiny-graph'), '--engine', 'onnx', '--threads', '1', '--cache-dir', cache]);
  const g = JSON.parse(graph.stdout).pca;
  assert.equal(g.appliesToTheseOptions, false);
  assert.match(g.differences.join('\n'), /--model/);
});

test('real MobileNet: fit-pca on two labelled class folders (60 photos) and --pca rows = numpy\'s projection of the raw rows', async (t) => {
  const missing = missingShared('models', 'keras-mobilenet_v1_0.25_224') ?? missingShared('images', 'labelled', 'hat');
  if (missing) return t.skip(missing);
  if (!hasNumpy()) return t.skip(NO_NUMPY);
  const dir = tempDir('spp-pca-');
  const photos = ['hat', 'shoes'].flatMap((c) => readdirSync(sharedPath('images', 'labelled', c)).sort().slice(0, 30).map((f) => sharedPath('images', 'labelled', c, f)));
  const real = ['--model', sharedPath('models', 'keras-mobilenet_v1_0.25_224'), '--threads', '2', '--cache-dir', cache, '-q', '--size', '160'];
  const raw = join(dir, 'raw.npy');
  await ok([...photos, '-o', raw, ...real]);
  const pz = join(dir, 'p.npz');
  await ok(['fit-pca', raw, '--dim', '16', '--whiten', '-o', pz]);
  const out = join(dir, 'p.npy');
  await ok([...photos, '-o', out, '--pca', pz, ...real]);
  const r = JSON.parse(runPython(String.raw`
import json, sys, numpy as np
f = np.load(sys.argv[2], allow_pickle=False)
X = np.load(sys.argv[1]).astype(np.float64)
X = X / np.linalg.norm(X, axis=1, keepdims=True)
Y = (X - f['mean']) @ f['components'].astype(np.float64).T * f['scale']
Y = Y / np.linalg.norm(Y, axis=1, keepdims=True)
print(json.dumps({'d': int(X.shape[1]), 'shape': list(np.load(sys.argv[3]).shape), 'maxdiff': float(np.abs(Y - np.load(sys.argv[3])).max())}))
`, [raw, pz, out]));
  assert.deepEqual(r.shape, [60, 16]);
  assert.ok(r.d > 1000, `a real descriptor (${r.d} values)`);
  assert.ok(r.maxdiff < 1e-5, `max |numpy − tool| = ${r.maxdiff}`);
});
