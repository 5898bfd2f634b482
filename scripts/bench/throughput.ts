/**
 * `npm run bench`: images/s and peak RSS of spp-extract against the `@tensorflow-models/mobilenet`
 * peer and against the bare ONNX Runtime backbone, on the 500 labelled photos of ../shared
 * (shorter side 224, levels 1,2,4, max pooling), with the ratios the throughput targets ask for.
 *
 *   node dist/scripts/bench/throughput.js [--rounds N] [--quick]
 *
 * Each configuration runs in its own child process (so peak RSS is that configuration's alone), and
 * the configurations alternate within each round (a, b, c, … then again, starting one later each
 * round) so that a slow spell of this shared 2-core machine hits all of them, not one. We report
 * medians over the rounds. Nothing here asserts a time: it prints PASS/MISS against the targets.
 *
 * Internal: `--config <id> --list <file> --model <dir> [--cache-dir <dir>]` is one in-process
 * configuration, run by the parent in a fresh process; it prints one `BENCH_RESULT {json}` line.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CLI, REPO, fmt, machineLine, makeTempDir, median, parseCliSummary, peakMiB, removeDir, reproduceLine,
  requirePaths, rssMethod, runNode, sharedDir, table, tail,
} from './common.js';

const SCRIPT = 'dist/scripts/bench/throughput.js';
const LEVELS = [1, 2, 4];
const RESULT_TAG = 'BENCH_RESULT ';
const WARMUP = 2; // untimed images before each in-process timed loop (JIT, allocator, ORT arenas)

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    config: { type: 'string' },
    list: { type: 'string' },
    model: { type: 'string' },
    'cache-dir': { type: 'string' },
  },
  strict: true,
});

// ---------------------------------------------------------------------------------------------
// In-process configurations (run in a child of this script).
// ---------------------------------------------------------------------------------------------

interface ChildResult {
  config: string;
  images: number;
  seconds: number;
  maxRssKiB: number;
  backend: string;
  /** c only: the other parts of the e2e time, measured on the same images. */
  decodeSeqMsPerImg?: number;
  decodePar4MsPerImg?: number;
  sppMsPerImg?: number;
  writeMsPerImg?: number;
}

function report(r: Omit<ChildResult, 'maxRssKiB'>): void {
  const out: ChildResult = { ...r, maxRssKiB: process.resourceUsage().maxRSS };
  process.stdout.write(`${RESULT_TAG}${JSON.stringify(out)}\n`);
}

async function readList(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
}

/**
 * (c) The bound: the same ONNX session the CLI uses (loadOnnxBackbone, default threads), on pixels
 * decoded beforehand with the tool's decodeImage. Only backbone.featureMap calls are summed into
 * the bound. The same child also measures the other parts of the e2e time on the same images, each
 * timed on its own: sharp decode alone (one at a time, and 4 in flight as --decode-ahead 4), then per
 * image SPP + normalise and the .npy row + manifest line through the tool's own writer.
 */
async function configBareOrt(paths: string[], model: string, cacheDir: string): Promise<void> {
  const { decodeImage } = await import('../../src/decode/decode.js');
  const { loadOnnxBackbone } = await import('../../src/backbone/onnx/backbone.js');
  const { descriptorLength, spatialPyramidPool, normalizeDescriptor } = await import('../../src/spp/spp.js');
  const { NpyWriter } = await import('../../src/output/index.js');

  let t0 = performance.now();
  const images = [];
  for (const p of paths) images.push(await decodeImage(p, { size: 224 }, p));
  const decodeSeqMs = performance.now() - t0;

  t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const p = paths[next++]!;
      await decodeImage(p, { size: 224 }, p);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const decodePar4Ms = performance.now() - t0;

  // worker: false — the bound is the session itself, without the worker's message passing.
  const backbone = await loadOnnxBackbone({ model, cacheDir, worker: false });
  const { info } = backbone;
  const dim = descriptorLength(info.channels, LEVELS);
  const tmp = makeTempDir('spp-bench-c-');
  const writer = await NpyWriter.create(join(tmp, 'c.npy'), {
    tool: 'spp-extract', engine: 'onnx', model: info.model, modelFormat: info.format, layer: info.layer,
    inputRange: info.inputRange, levels: LEVELS, pool: 'max', normalize: 'none', dim, channels: info.channels,
    dtype: 'float32', size: 224, maxSide: 4096, background: '#ffffff', failOn: 'error', inputs: paths.length,
  });
  for (const img of images.slice(0, WARMUP)) await backbone.featureMap(img);
  let backboneMs = 0;
  let sppMs = 0;
  let writeMs = 0;
  for (let i = 0; i < images.length; i++) {
    const img = images[i]!;
    let t = performance.now();
    const map = await backbone.featureMap(img);
    backboneMs += performance.now() - t;
    t = performance.now();
    const descriptor = normalizeDescriptor(spatialPyramidPool(map, LEVELS, 'max'), 'none');
    sppMs += performance.now() - t;
    t = performance.now();
    await writer.row({ index: i, path: paths[i]!, width: img.originalWidth, height: img.originalHeight, descriptor });
    writeMs += performance.now() - t;
  }
  const t = performance.now();
  await writer.close({ rows: images.length, failures: 0, complete: true });
  writeMs += performance.now() - t;
  backbone.dispose();
  removeDir(tmp);
  const n = images.length;
  report({
    config: 'c', images: n, seconds: backboneMs / 1000, backend: info.backend,
    decodeSeqMsPerImg: decodeSeqMs / n, decodePar4MsPerImg: decodePar4Ms / n, sppMsPerImg: sppMs / n, writeMsPerImg: writeMs / n,
  });
}

/**
 * Reads a TF.js model.json and its shards as they are on disk (the peer's user on wasm has no
 * file:// handler: that needs tfjs-node). Unlike the tool's reader, nothing is patched: the
 * TF Hub graph keeps its fixed 224×224 placeholder, as the peer expects.
 */
async function originalArtifacts(modelDir: string) {
  const json = JSON.parse(await readFile(join(modelDir, 'model.json'), 'utf8'));
  const buffers: Buffer[] = [];
  const weightSpecs = [];
  for (const group of json.weightsManifest) {
    for (const p of group.paths) buffers.push(await readFile(join(modelDir, p)));
    weightSpecs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  return {
    modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy, convertedBy: json.convertedBy,
    weightSpecs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer,
  };
}

async function peerTf() {
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs could not start the wasm backend');
  await tf.ready();
  const sharp = (await import('sharp')).default;
  return { tf, sharp };
}

/**
 * (d) The peer as its README shows it, with the exact TF Hub weights it loads for
 * {version: 1, alpha: 0.25}: per image sharp → raw RGB (full size) → int32 tensor → infer(img, true)
 * (the package normalises and resizes to 224×224 itself) → data(). Decoding is inside the loop.
 */
async function configPeerTfhub(paths: string[], modelDir: string): Promise<void> {
  const { tf, sharp } = await peerTf();
  const mobilenet = await import('@tensorflow-models/mobilenet');
  const net = await mobilenet.load({
    version: 1, alpha: 0.25, modelUrl: tf.io.fromMemory(await originalArtifacts(modelDir)), inputRange: [0, 1],
  });
  const one = async (p: string) => {
    const { data, info } = await sharp(p).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const img = tf.tensor3d(data, [info.height, info.width, 3], 'int32');
    const emb = net.infer(img, true);
    const n = (await emb.data()).length;
    img.dispose();
    emb.dispose();
    return n;
  };
  // Sanity (untimed): the embedding is the 256-d global pool of α0.25.
  for (const p of paths.slice(0, WARMUP)) if ((await one(p)) !== 256) throw new Error('peer embedding is not 256-d');
  const t0 = performance.now();
  for (const p of paths) await one(p);
  report({ config: 'd', images: paths.length, seconds: (performance.now() - t0) / 1000, backend: `tfjs ${tf.getBackend()}` });
}

/**
 * (e) keras MobileNet v1 α0.75 "through tfjs directly", the peer for that model: loadLayersModel,
 * the model cut at conv_pw_13_relu, per image sharp → 224×224 raw RGB → [-1, 1] → predict →
 * global average → data().
 */
async function configPeerKeras(paths: string[], modelDir: string): Promise<void> {
  const { tf, sharp } = await peerTf();
  const full = await tf.loadLayersModel(tf.io.fromMemory(await originalArtifacts(modelDir)));
  const cut = tf.model({ inputs: full.inputs, outputs: full.getLayer('conv_pw_13_relu').output as import('@tensorflow/tfjs').SymbolicTensor });
  const one = async (p: string) => {
    const { data } = await sharp(p).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    const emb = tf.tidy(() => {
      const x = tf.tensor3d(data, [224, 224, 3], 'int32').toFloat().div(127.5).sub(1).expandDims(0);
      return (cut.predict(x) as import('@tensorflow/tfjs').Tensor).mean([1, 2]);
    });
    const n = (await emb.data()).length;
    emb.dispose();
    return n;
  };
  for (const p of paths.slice(0, WARMUP)) if ((await one(p)) !== 768) throw new Error('keras embedding is not 768-d');
  const t0 = performance.now();
  for (const p of paths) await one(p);
  report({ config: 'e', images: paths.length, seconds: (performance.now() - t0) / 1000, backend: `tfjs ${tf.getBackend()}` });
}

async function childMain(config: string): Promise<void> {
  if (!opt.list || !opt.model) throw new Error('--config needs --list and --model');
  const paths = await readList(opt.list);
  const ownCache = opt['cache-dir'] === undefined ? makeTempDir('spp-bench-cache-') : undefined;
  const cacheDir = opt['cache-dir'] ?? ownCache!;
  try {
    switch (config) {
      case 'c': return await configBareOrt(paths, opt.model, cacheDir);
      case 'd': return await configPeerTfhub(paths, opt.model);
      case 'e': return await configPeerKeras(paths, opt.model);
      default: throw new Error(`unknown --config ${config}`);
    }
  } finally {
    if (ownCache) removeDir(ownCache);
  }
}

// ---------------------------------------------------------------------------------------------
// The parent: runs every configuration R times, alternating, and prints the tables.
// ---------------------------------------------------------------------------------------------

interface Config {
  id: string;
  what: string;
  weights: string;
  /** CLI end to end (wall time of the child) or an in-process child of this script. */
  kind: 'cli' | 'inproc';
  /** With --quick these run on the 100-photo subset. */
  slow: boolean;
  cliArgs?: string[];
  model: string;
}

interface Measurement { imgPerSec: number; peakMiB: number; images: number; inRunImgPerSec?: number; backend?: string; child?: ChildResult }

async function parentMain(): Promise<void> {
  const rounds = Number(opt.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got '${opt.rounds}'`);
  const shared = sharedDir();
  const labelled = join(shared, 'images', 'labelled');
  const keras = join(shared, 'models', 'keras-mobilenet_v1_0.75_224');
  const tfhub = join(shared, 'models', 'tfhub-mobilenet_v1_025_224');
  requirePaths([labelled, join(keras, 'model.json'), join(tfhub, 'model.json')], 'npm run bench');

  console.log(`# spp-extract throughput benchmark\n# reproduce: ${reproduceLine(SCRIPT, 'bench')}`);
  console.log(`# ${machineLine()}`);

  // The CLI's own input order (byte order of relative paths), from the library.
  const { expandInputs } = await import('../../src/inputs/expand.js');
  const all = (await expandInputs([labelled])).map((e) => e.path);
  // --quick: every 5th photo, so the subset still spans the 10 classes (the first 100 would be 2).
  const subset = opt.quick ? all.filter((_, i) => i % 5 === 0) : all;
  const tmp = makeTempDir('spp-bench-');
  try {
    await measure(all, subset, labelled, keras, tfhub, tmp);
  } finally {
    removeDir(tmp);
  }
}

async function measure(all: string[], subset: string[], labelled: string, keras: string, tfhub: string, tmp: string): Promise<void> {
  const rounds = Number(opt.rounds);
  const cacheDir = join(tmp, 'cache');
  const listAll = join(tmp, 'all.txt');
  const listSubset = join(tmp, 'subset.txt');
  await writeFile(listAll, all.join('\n') + '\n');
  await writeFile(listSubset, subset.join('\n') + '\n');

  console.log(`# data: ${all.length} photos under ${labelled}; shorter side 224, levels ${LEVELS.join(',')}, max pooling, .npy output`);
  console.log(`# ${rounds} round(s), configurations alternating; medians reported; ${rssMethod()}`);
  if (opt.quick) console.log(`# --quick: the tfjs-wasm α0.75 configurations b and e (~10 img/s) run on ${subset.length} photos (every 5th), the others on all ${all.length}`);
  console.log(`# ONNX conversions cached in a private ${cacheDir} (converted once, before the rounds)`);

  const common = ['--levels', LEVELS.join(','), '--pool', 'max', '--size', '224', '--cache-dir', cacheDir, '--force', '-v'];
  const configs: Config[] = [
    { id: 'a', what: 'spp-extract e2e, --engine onnx', weights: 'keras v1 0.75', kind: 'cli', slow: false, model: keras, cliArgs: ['--engine', 'onnx'] },
    { id: 'a25', what: 'spp-extract e2e, --engine onnx', weights: 'tfhub v1 0.25', kind: 'cli', slow: false, model: tfhub, cliArgs: ['--engine', 'onnx'] },
    { id: 'b', what: 'spp-extract e2e, --engine tfjs (wasm)', weights: 'keras v1 0.75', kind: 'cli', slow: true, model: keras, cliArgs: ['--engine', 'tfjs', '--backend', 'wasm'] },
    { id: 'c', what: 'bare ORT backbone.featureMap (pre-decoded)', weights: 'keras v1 0.75', kind: 'inproc', slow: false, model: keras },
    // d runs at ~55 img/s here (α0.25 is light), so it keeps all 500 photos even with --quick.
    { id: 'd', what: 'peer @tensorflow-models/mobilenet, wasm', weights: 'tfhub v1 0.25', kind: 'inproc', slow: false, model: tfhub },
    { id: 'e', what: 'peer tfjs loadLayersModel+predict+GAP, wasm', weights: 'keras v1 0.75', kind: 'inproc', slow: true, model: keras },
  ];

  // Convert both models once (cached), outside any measurement.
  for (const model of [keras, tfhub]) {
    const r = await runNode([CLI, 'info', '--model', model, '--engine', 'onnx', '--cache-dir', cacheDir], { tmp });
    if (r.code !== 0) throw new Error(`spp-extract info --model ${model} failed:\n${tail(r.stderr + r.stdout)}`);
  }

  const runOne = async (c: Config): Promise<Measurement> => {
    const useSubset = opt.quick && c.slow;
    const paths = useSubset ? subset : all;
    if (c.kind === 'cli') {
      const out = join(tmp, `out-${c.id}.npy`);
      // The full set is given as the folder, as a user would; the subset as a list on stdin.
      const inputs = useSubset ? ['-'] : [labelled];
      const r = await runNode([CLI, ...inputs, '-o', out, '--model', c.model, ...c.cliArgs!, ...common], {
        tmp, input: useSubset ? subset.join('\n') + '\n' : undefined,
      });
      const s = parseCliSummary(r.stderr);
      if (r.code !== 0 || s.rows !== paths.length) throw new Error(`config ${c.id}: spp-extract exited ${r.code}, rows ${s.rows}:\n${tail(r.stderr)}`);
      await rm(out, { force: true });
      await rm(out.replace(/\.npy$/, '.manifest.jsonl'), { force: true });
      return {
        imgPerSec: paths.length / (r.wallMs / 1000), peakMiB: peakMiB(r, s.peakRssMiB), images: paths.length,
        inRunImgPerSec: s.imgPerSec, backend: s.engineLine?.replace(/^spp-extract: engine /, '').replace(/, model .*$/, ''),
      };
    }
    const r = await runNode([join(REPO, SCRIPT), '--config', c.id, '--list', useSubset ? listSubset : listAll, '--model', c.model, '--cache-dir', cacheDir], { tmp });
    const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_TAG));
    if (r.code !== 0 || !line) throw new Error(`config ${c.id} failed (exit ${r.code}):\n${tail(r.stderr + r.stdout)}`);
    const child = JSON.parse(line.slice(RESULT_TAG.length)) as ChildResult;
    return { imgPerSec: child.images / child.seconds, peakMiB: peakMiB(r, child.maxRssKiB / 1024), images: child.images, backend: child.backend, child };
  };

  const results = new Map<string, Measurement[]>(configs.map((c) => [c.id, []]));
  const started = performance.now();
  for (let round = 0; round < rounds; round++) {
    // Rotate the starting configuration each round so none always runs first (cold) or last.
    const order = configs.map((_, i) => configs[(i + round) % configs.length]!);
    const line: string[] = [];
    for (const c of order) {
      const m = await runOne(c);
      results.get(c.id)!.push(m);
      line.push(`${c.id} ${fmt(m.imgPerSec)} img/s`);
    }
    console.log(`# round ${round + 1}/${rounds} (${fmt((performance.now() - started) / 1000, 0)} s): ${line.join(', ')}`);
  }

  const med = (id: string, f: (m: Measurement) => number | undefined) =>
    median(results.get(id)!.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x)));
  const rate = (id: string) => med(id, (m) => m.imgPerSec);

  console.log('\n## Throughput (medians over rounds; e2e img/s = images / wall time of the whole CLI process, start-up and model load included)\n');
  const rows = configs.map((c) => {
    const ms = results.get(c.id)!;
    return [
      c.id, c.what, c.weights, ms[0]?.backend ?? '', String(ms[0]?.images ?? ''),
      fmt(rate(c.id)), ms.map((m) => fmt(m.imgPerSec)).join(' '),
      c.kind === 'cli' ? fmt(med(c.id, (m) => m.inRunImgPerSec)) : '',
      fmt(med(c.id, (m) => m.peakMiB), 0),
    ];
  });
  console.log(table(['id', 'configuration', 'weights', 'engine / backend', 'images', 'img/s', 'per round', 'CLI in-run img/s', 'peak RSS MiB'], rows));

  // Targets.
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const r1a = rate('a25') / rate('d');
  const r1b = rate('a') / rate('e');
  const r2 = rate('a') / rate('c');
  const sppMs = med('c', (m) => m.child?.sppMsPerImg);
  const writeMs = med('c', (m) => m.child?.writeMsPerImg);
  const wallMsA = 1000 / rate('a');
  const share = (sppMs + writeMs) / wallMsA;
  console.log('\n## Targets\n');
  console.log(table(['target', 'measured', 'goal', 'result'], [
    ['(1) same weights tfhub v1 0.25: spp-extract e2e onnx (a25) / peer (d)', `${fmt(r1a, 2)}×`, '≥ 5×', verdict(r1a >= 5)],
    ['(1) same weights keras v1 0.75: spp-extract e2e onnx (a) / tfjs direct (e)', `${fmt(r1b, 2)}×`, '≥ 5×', verdict(r1b >= 5)],
    ['(2) spp-extract e2e onnx (a) / bare ORT backbone bound (c)', `${fmt(100 * r2)} %`, '≥ 80 %', verdict(r2 >= 0.8)],
    ['(3) SPP + writing, share of (a) wall time', `${fmt(100 * share, 2)} %`, '≤ 5 %', verdict(share <= 0.05)],
  ]));
  const inRun = (id: string) => med(id, (m) => m.inRunImgPerSec);
  console.log(`\nwithout start-up and model load (the CLI's own timed loop): (a25)/(d) ${fmt(inRun('a25') / rate('d'), 2)}×, ` +
    `(a)/(e) ${fmt(inRun('a') / rate('e'), 2)}×, (a)/(c) ${fmt((100 * inRun('a')) / rate('c'))} %, ` +
    `SPP + writing ${fmt((100 * (sppMs + writeMs) * inRun('a')) / 1000, 2)} % of the loop`);
  console.log(`also: engine onnx / engine tfjs end to end (a / b) = ${fmt(rate('a') / rate('b'), 2)}×`);
  if (opt.quick) console.log('note: with --quick, b and e ran on 100 photos: the keras pairing of (1) compares rates over different photo sets, and b pays its start-up over 100 photos only.');

  // Where the time of (a) goes. Decoding overlaps the backbone (it runs ahead on libuv's pool), so
  // these do not add up to the wall time; SPP and the row write sit on the backbone's critical path.
  const inRunA = inRun('a');
  const wallS = all.length / rate('a');
  const runS = all.length / inRunA;
  console.log('\n## Where the time of (a) goes (keras v1 0.75, engine onnx, ms per image unless said)\n');
  console.log(table(['part', 'value'], [
    ['(a) wall time of the CLI process, 500 photos', `${fmt(wallS, 2)} s = ${fmt(wallMsA, 2)} ms/img`],
    ['  start-up + model load (wall − the CLI\'s own timed loop)', `${fmt(wallS - runS, 2)} s`],
    ['  the CLI\'s timed loop', `${fmt(1000 / inRunA, 2)} ms/img`],
    ['decode (sharp, decodeImage), one at a time', fmt(med('c', (m) => m.child?.decodeSeqMsPerImg), 2)],
    ['decode, 4 in flight (--decode-ahead 4), amortised', fmt(med('c', (m) => m.child?.decodePar4MsPerImg), 2)],
    ['backbone.featureMap (c), incl. uint8→float input and read-back', fmt(1000 / rate('c'), 2)],
    ['SPP (levels 1,2,4, max) + normalize', fmt(sppMs, 3)],
    ['.npy row + manifest line write', fmt(writeMs, 3)],
    ['loop − (backbone + SPP + write): decode not hidden, scheduling, GC', fmt(1000 / inRunA - 1000 / rate('c') - sppMs - writeMs, 2)],
  ]));
  console.log(`\n# total bench time ${fmt((performance.now() - started) / 1000, 0)} s`);
}

if (opt.config) await childMain(opt.config);
else await parentMain();
