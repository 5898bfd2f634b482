import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadEngine } from '../../src/backbone/load.js';
import { createExtractor } from '../../src/pipeline/extractor.js';
import { ensureDir } from '../../src/backbone/source.js';
import { isSealedOnnx, loadOnnxBackbone, type OnnxBackbone } from '../../src/backbone/onnx/backbone.js';
import { runCli } from '../helpers/cli.js';
import { syntheticPixels } from '../helpers/pixels.js';
import { unconvertibleModel } from '../helpers/models.js';
import { tempDir } from '../helpers/tmp.js';
import { fixture, missingShared, sharedPath } from '../helpers/shared.js';


/** A path under a regular file: mkdir fails with ENOTDIR, for root too (chmod would not stop root). */
function underAFile(): string {
  const file = join(tempDir('spp-blocked-'), 'a-file');
  writeFileSync(file, 'not a folder');
  return join(file, 'cache');
}

const warningLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('spp-extract: warning:'));
const CACHE_WARNING = /^spp-extract: warning: model cache .* is not writable \(.*\); this run uses a temporary copy .*set --cache-dir DIR or XDG_CACHE_HOME to a writable folder$/;

const onProc = process.platform === 'linux' && existsSync('/proc/self');

/** The same extraction with a writable cache: run once, shared by the unwritable-cache tests as their reference. */
let cachedRun: Promise<{ code: number | null; stderr: string; out: string }> | undefined;
function cachedEngineRun() {
  cachedRun ??= (async () => {
    const out = join(tempDir('spp-out-'), 'y.npy');
    const r = await runCli([fixture('images', 'red-64x48.png'), '-o', out, '-q', '--model', fixture('tiny-layers'), '--cache-dir', tempDir('spp-cache-')]);
    return { code: r.code, stderr: r.stderr, out };
  })();
  return cachedRun;
}

test('ensureDir: fails at once where Node\'s recursive mkdir would spin (/proc), creates nested folders, tolerates races', { timeout: 10_000 }, async () => {
  if (onProc) await assert.rejects(ensureDir(`/proc/spp-extract-test-${process.pid}/onnx`), /ENOENT.*mkdir '\/proc\/spp-extract-test-/);
  await assert.rejects(ensureDir(join(underAFile(), 'onnx')), /ENOTDIR/);
  const base = tempDir('spp-ensure-');
  const deep = join(base, 'a', 'b', 'c');
  await Promise.all(Array.from({ length: 8 }, () => ensureDir(deep)));
  assert.ok(statSync(deep).isDirectory());
});

for (const [name, env, args] of [
  ['--cache-dir under a regular file (ENOTDIR)', {}, () => ['--cache-dir', underAFile()]],
  ['XDG_CACHE_HOME under a regular file', () => ({ XDG_CACHE_HOME: underAFile() }), () => []],
  ...(onProc ? [['--cache-dir on /proc (mkdir ENOENT forever with Node\'s recursive mkdir)', {}, () => ['--cache-dir', `/proc/spp-extract-test-${process.pid}`]]] : []),
] as [string, object | (() => object), () => string[]][]) {
  test(`unwritable cache, ${name}: still onnx, one warning, no hang`, { timeout: 60_000 }, async () => {
    const tmp = tempDir('spp-tmpdir-');
    const extraEnv = typeof env === 'function' ? env() : env;
    const cwd = tempDir('spp-cwd-');
    const info = await runCli(['info', '--json', '--model', fixture('tiny-layers'), ...args()], { cwd, env: { TMPDIR: tmp, ...extraEnv } });
    assert.equal(info.code, 0, info.stderr);
    // ORT's telemetry, left on, drops ':memory:.ses' into the working directory when it cannot use $HOME.
    assert.deepEqual(readdirSync(cwd), []);
    assert.equal(JSON.parse(info.stdout).engine, 'onnx');
    const lines = warningLines(info.stderr);
    assert.equal(lines.length, 1, info.stderr);
    assert.match(lines[0], CACHE_WARNING);
    assert.equal(info.stderr.trim(), lines[0], 'nothing else on stderr');

    // An extraction run says the same once, and its descriptors are the cached-engine ones.
    const out = join(tempDir('spp-out-'), 'x.npy');
    const run = await runCli([fixture('images', 'red-64x48.png'), '-o', out, '-q', '--model', fixture('tiny-layers'), ...args()], { env: { TMPDIR: tmp, ...extraEnv } });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(warningLines(run.stderr).length, 1, run.stderr);
    const good = await cachedEngineRun();
    assert.equal(good.code, 0, good.stderr);
    assert.equal(good.stderr, '');
    assert.deepEqual(readFileSync(out), readFileSync(good.out));
    // The temporary .onnx is gone once the sessions have loaded it.
    assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('spp-extract-')), []);
  });
}

test('unwritable cache and no usable temp dir: the model runs from memory on this thread', { timeout: 60_000 }, async () => {
  const [badTmp, badCache] = [underAFile(), underAFile()];
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = badTmp;
  let sel;
  try {
    sel = await loadEngine({ model: fixture('tiny-layers'), cacheDir: badCache, threads: 1 });
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
  try {
    assert.equal(sel.engine, 'onnx');
    const info = (sel.backbone as OnnxBackbone).info;
    assert.equal(info.onnxPath, '(memory)');
    assert.equal(info.cacheFallback?.to, 'memory');
    assert.match(info.cacheFallback?.reason ?? '', /ENOTDIR/);
    assert.equal(sel.warnings?.length, 1);
    const img = syntheticPixels(40, 30, 1);
    const ref = await loadOnnxBackbone({ model: fixture('tiny-layers'), threads: 1, cacheDir: tempDir('spp-cache-'), worker: false });
    try {
      assert.deepEqual((await sel.backbone.featureMap(img)).data, (await ref.featureMap(img)).data);
    } finally {
      ref.dispose();
    }
  } finally {
    sel.backbone.dispose();
  }
});

for (const worker of [false, true]) test(`a torn or corrupted cached .onnx is detected and rebuilt (worker: ${worker})`, async () => {
  const cacheDir = tempDir('spp-torn-');
  const img = syntheticPixels(53, 41, 5);
  const load = () => loadOnnxBackbone({ model: fixture('tiny-layers'), threads: 1, cacheDir, worker });
  const first = await load();
  const good = readFileSync(first.info.onnxPath);
  const expected = await first.featureMap(img);
  first.dispose();
  assert.ok(isSealedOnnx(good));

  const damage: [string, (path: string) => void][] = [
    ['truncated to half (killed mid-write)', (p) => truncateSync(p, Math.floor(good.length / 2))],
    ['checksum cut off', (p) => truncateSync(p, good.length - 10)],
    ['one weight byte flipped, same length', (p) => {
      const b = Buffer.from(good);
      b[Math.floor(b.length / 2)] ^= 0x40;
      writeFileSync(p, b);
    }],
    ['empty', (p) => writeFileSync(p, '')],
  ];
  for (const [what, hurt] of damage) {
    hurt(first.info.onnxPath);
    assert.ok(!isSealedOnnx(readFileSync(first.info.onnxPath)), what);
    const again = await load();
    try {
      assert.equal(again.info.cacheHit, false, `${what}: not taken from the cache`);
      assert.equal(again.info.onnxPath, first.info.onnxPath);
      assert.deepEqual(readFileSync(again.info.onnxPath), good, `${what}: rebuilt byte for byte`);
      assert.deepEqual((await again.featureMap(img)).data, expected.data, what);
    } finally {
      await again.dispose();
    }
  }
  const hit = await load();
  await hit.dispose();
  assert.equal(hit.info.cacheHit, true);
  assert.deepEqual(onnxFiles(cacheDir), [first.info.onnxPath.split('/').pop()]);
});

const onnxFiles = (cacheDir: string) => readdirSync(join(cacheDir, 'onnx')).filter((f) => f.endsWith('.onnx'));

/** A private copy of the tiny layers model, so its files can be rewritten. */
function modelCopy(): string {
  const dir = tempDir('spp-model-copy-');
  cpSync(fixture('tiny-layers'), dir, { recursive: true });
  return dir;
}

/** Every file of an index folder under the cache's onnx folder. */
const indexFiles = (cacheDir: string, folder: string) => readdirSync(join(cacheDir, 'onnx', folder)).map((f) => join(cacheDir, 'onnx', folder, f));

test('the model files\' identity finds the cached .onnx and its probe; a rewritten weight file is converted again', async () => {
  const cacheDir = tempDir('spp-identity-');
  const model = modelCopy();
  const img = syntheticPixels(53, 41, 9);
  const load = () => loadOnnxBackbone({ model, threads: 1, cacheDir });
  const first = await load();
  const before = await first.featureMap(img);
  await first.dispose();
  assert.equal(indexFiles(cacheDir, 'by-file').length, 1, 'one identity entry');
  const second = await load();
  await second.dispose();
  assert.equal(second.info.cacheHit, true);
  assert.deepEqual(second.probe, first.probe, 'the recorded probe is the measured one');

  // Same size, other bytes: the shard's identity (ctime, mtime) changes, so the old entry is not used.
  const shard = readdirSync(model).find((f) => f.endsWith('.bin'))!;
  const bytes = readFileSync(join(model, shard));
  const scaled = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)).map((v) => v * 2);
  writeFileSync(join(model, shard), new Uint8Array(scaled.buffer));
  const third = await load();
  const after = await third.featureMap(img);
  await third.dispose();
  assert.equal(third.info.cacheHit, false, 'converted again');
  assert.notEqual(third.info.onnxPath, first.info.onnxPath);
  assert.notDeepEqual(after.data, before.data, 'the new weights are used');
  const fresh = await loadOnnxBackbone({ model, threads: 1, cacheDir: tempDir('spp-identity-fresh-') });
  assert.deepEqual((await fresh.featureMap(img)).data, after.data, 'same as a load with an empty cache');
  await fresh.dispose();
});

test('malformed index entries and a guess naming another model\'s .onnx are ignored: the right model opens', async () => {
  const cacheDir = tempDir('spp-guess-');
  const img = syntheticPixels(47, 38, 3);
  const load = (layer?: string) => loadOnnxBackbone({ model: fixture('tiny-layers'), threads: 1, cacheDir, ...(layer ? { layer } : {}) });
  const whole = await load();
  const expected = await whole.featureMap(img);
  await whole.dispose();
  const cut = await load('conv1');
  await cut.dispose();
  const cutKey = cut.info.onnxPath.split('/').pop()!.replace('.onnx', '');
  // Both guesses now name the conv1 cut; the default load preloads it, then must open its own model.
  for (const f of indexFiles(cacheDir, 'by-model-json')) writeFileSync(f, cutKey);
  const misled = await load();
  try {
    assert.equal(misled.info.onnxPath, whole.info.onnxPath);
    assert.equal(misled.info.cacheHit, true);
    assert.deepEqual((await misled.featureMap(img)).data, expected.data);
  } finally {
    await misled.dispose();
  }
  for (const junk of ['', 'not json', '{"key":"../../etc/passwd","probe":{}}', JSON.stringify({ key: cutKey, probe: { channels: -1 } })]) {
    for (const f of [...indexFiles(cacheDir, 'by-file'), ...indexFiles(cacheDir, 'by-model-json')]) writeFileSync(f, junk);
    const again = await load();
    try {
      assert.equal(again.info.onnxPath, whole.info.onnxPath, `entry ${JSON.stringify(junk)}`);
      assert.equal(again.info.cacheHit, true, 'found by its content key instead');
      assert.deepEqual((await again.featureMap(img)).data, expected.data);
    } finally {
      await again.dispose();
    }
  }
});

test('8 processes converting the same model at once all succeed and leave exactly one good .onnx', { timeout: 120_000 }, async () => {
  const cacheDir = tempDir('spp-race-');
  const runs = await Promise.all(
    Array.from({ length: 8 }, () => runCli(['info', '--json', '--model', fixture('tiny-layers'), '--cache-dir', cacheDir, '--engine', 'onnx'])),
  );
  for (const r of runs) {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(JSON.parse(r.stdout).engine, 'onnx');
  }
  const files = readdirSync(join(cacheDir, 'onnx'), { recursive: true, encoding: 'utf8' });
  assert.equal(files.filter((f) => f.endsWith('.onnx')).length, 1, `exactly one .onnx: ${files.join(', ')}`);
  assert.deepEqual(files.filter((f) => f.includes('.tmp-')), [], 'no temp files');
  const onnx = files.find((f) => f.endsWith('.onnx'))!;
  assert.match(onnx, /^[0-9a-f]{64}\.onnx$/);
  assert.ok(isSealedOnnx(readFileSync(join(cacheDir, 'onnx', onnx))));
  assert.deepEqual(readdirSync(cacheDir), ['onnx']);
});

test('--engine auto falling back to tfjs says so in one warning line, without -v', { timeout: 60_000 }, async () => {
  const model = unconvertibleModel();
  const r = await runCli(['info', '--json', '--model', model, '--cache-dir', tempDir('spp-cache-')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).engine, 'tfjs');
  const lines = warningLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^spp-extract: warning: --engine auto fell back to tfjs \(cannot convert layer 'up' \(class Conv2DTranspose\).*\): about 10x slower.*--engine onnx makes this an error$/);
  const out = join(tempDir('spp-out-'), 'x.npy');
  const run = await runCli([fixture('images', 'red-64x48.png'), '-o', out, '-q', '--model', model, '--layer', 'up', '--cache-dir', tempDir('spp-cache-')]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(warningLines(run.stderr).length, 1, run.stderr);
});

/**
 * The bound the README states for --engine onnx vs tfjs (tfjs-wasm): max |onnx − tfjs| ≤ 3e-4 ×
 * max |descriptor|, per descriptor (defaults: levels 1,2,4, max pool, no normalisation). Measured
 * on this project's 2-core Xeon: ≤ 3.9e-5 (keras v1 α0.75: 2.3e-4 absolute on values up to 6;
 * TF Hub v1 α0.25: 2.1e-5); an issue reported 8.8e-4 (1.5e-4 relative) on another machine, so the
 * stated bound keeps 2x over that.
 */
const ENGINE_BOUND = 3e-4;

for (const model of ['keras-mobilenet_v1_0.75_224', 'tfhub-mobilenet_v1_025_224']) {
  test(`engine agreement on the real photos: ${model} onnx vs tfjs-wasm within ${ENGINE_BOUND} of the largest value`, { timeout: 300_000 }, async (t) => {
    const missing = missingShared('models', model, 'model.json') ?? missingShared('images', 'photos', 'grace_hopper.jpg');
    if (missing) return t.skip(missing);
    const photos = readdirSync(sharedPath('images', 'photos')).filter((f) => f.endsWith('.jpg')).sort();
    assert.equal(photos.length, 6);
    const cacheDir = tempDir('spp-agree-');
    const onnx = await createExtractor({ model: sharedPath('models', model), engine: 'onnx', threads: 1, cacheDir });
    const tfjs = await createExtractor({ model: sharedPath('models', model), engine: 'tfjs', backend: 'wasm', cacheDir });
    try {
      assert.equal(onnx.info.engine, 'onnx');
      assert.equal(tfjs.info.backend, 'wasm');
      let worst = 0;
      for (const photo of photos) {
        const [a, b] = [await onnx.extract(sharedPath('images', 'photos', photo)), await tfjs.extract(sharedPath('images', 'photos', photo))];
        assert.equal(a.length, b.length);
        let maxDiff = 0;
        let maxAbs = 0;
        for (let i = 0; i < a.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
          maxAbs = Math.max(maxAbs, Math.abs(b[i]));
        }
        const rel = maxDiff / maxAbs;
        worst = Math.max(worst, rel);
        t.diagnostic(`${photo}: max abs diff ${maxDiff.toExponential(2)}, max |x| ${maxAbs.toFixed(2)}, rel ${rel.toExponential(2)}`);
        assert.ok(maxAbs > 1, `${photo}: a non-trivial descriptor`);
        assert.ok(rel <= ENGINE_BOUND, `${photo}: max abs diff ${maxDiff} / max |x| ${maxAbs} = ${rel} > ${ENGINE_BOUND}`);
      }
      t.diagnostic(`worst relative diff ${worst.toExponential(2)} (bound ${ENGINE_BOUND})`);
    } finally {
      await onnx.dispose();
      await tfjs.dispose();
    }
  });
}
