/**
 * The backbone call as the pipeline makes it (decoded pixels → inference worker → feature map),
 * old against new: an earlier revision's ONNX backbone and this checkout's, side by side in one
 * process, on the 500 labelled photos of ../shared decoded once beforehand (default size policy).
 *
 *   node dist/scripts/bench/handoff.js [--against <git rev>] [--rounds N] [--model <id>]
 *
 * `old` is the revision's featureMap, `new` this checkout's: one image in the backbone at a time, as
 * in the pipeline; one ORT thread. The two alternate (old first in even rounds); we print medians
 * of wall and CPU ms/img (CPU: the whole process, so the worker thread's copy-in, preprocessing and
 * inference all count) and the median of the per-round new/old ratios.
 *
 * A second table times the hand-off alone, on the same decoded buffers: a round trip to an echo
 * worker with the pixels cloned (what featureMap does) against copied into a fresh ArrayBuffer and
 * transferred. sharp's output buffers cannot be detached (postMessage clones them even when they
 * are in the transfer list), so a transfer needs that one copy first.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import type * as DecodeModule from '../../src/decode/decode.js';
import type * as ExtractorModule from '../../src/pipeline/extractor.js';
import type { RgbPixels } from '../../src/backbone/contract.js';
import { REPO, fmt, labelledPhotos, machineLine, makeTempDir, median, removeDir, reproduceLine, requirePaths, sharedDir, table } from './common.js';
import { buildRevision, importFrom, resolveRevision } from './revision.js';

const { values: opt } = parseArgs({
  options: {
    against: { type: 'string', default: 'HEAD' },
    rounds: { type: 'string', default: '9' },
    model: { type: 'string', default: 'tfhub-mobilenet_v1_025_224' },
  },
  strict: true,
});

interface Config { name: string; run: (image: RgbPixels) => Promise<unknown> }
interface Pass { wallMs: number; cpuMs: number }

async function pass(config: Config, images: readonly RgbPixels[]): Promise<Pass> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // sharp's own buffers, as the pipeline hands them on.
  for (const img of images) await config.run(img);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs: wallMs / images.length, cpuMs: (cpu.user + cpu.system) / 1000 / images.length };
}

/** Runs the configurations in rotating order each round; one table row each, ratios to the first. */
async function compare(configs: Config[], images: readonly RgbPixels[], rounds: number): Promise<string[][]> {
  const runs = configs.map((): Pass[] => []);
  for (const c of configs) await pass(c, images.slice(0, 20)); // untimed warm-up
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < configs.length; k++) {
      const i = (r + k) % configs.length;
      runs[i]!.push(await pass(configs[i]!, images));
    }
  }
  return configs.map(({ name }, i) => {
    const ps = runs[i]!;
    const ratio = (f: (p: Pass) => number) => median(ps.map((p, j) => f(p) / f(runs[0]![j]!)));
    return [name, fmt(median(ps.map((p) => p.wallMs)), 3), fmt(ratio((p) => p.wallMs), 3), fmt(median(ps.map((p) => p.cpuMs)), 3), fmt(ratio((p) => p.cpuMs), 3)];
  });
}

/** A worker that answers each message at once: the cost of handing pixels over, nothing else. */
function echoWorker(): { send: (data: Uint8Array, transfer: boolean) => Promise<unknown>; close: () => Promise<number> } {
  const worker = new Worker("require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m.data.length))", { eval: true });
  return {
    send: (data, transfer) => new Promise((resolve) => {
      worker.once('message', resolve);
      worker.postMessage({ data }, transfer ? [data.buffer as ArrayBuffer] : []);
    }),
    close: () => worker.terminate(),
  };
}

async function main(): Promise<void> {
  const model = join(sharedDir(), 'models', opt.model);
  requirePaths([model], 'handoff bench');
  const rounds = Math.max(1, Number(opt.rounds));
  const sha = resolveRevision(opt.against);
  const oldDist = buildRevision(sha);
  const newDist = join(REPO, 'dist', 'src');
  const { decodeImage } = await importFrom<typeof DecodeModule>(newDist, 'decode/decode.js');
  const images: RgbPixels[] = [];
  for (const f of labelledPhotos()) images.push(await decodeImage(f));

  const cacheDir = makeTempDir('spp-handoff-cache-');
  const open = async (dist: string) =>
    (await importFrom<typeof ExtractorModule>(dist, 'pipeline/extractor.js')).createExtractor({ model, engine: 'onnx', threads: 1, cacheDir });
  const [oldEx, newEx] = [await open(oldDist), await open(newDist)];
  let backbone: string[][];
  try {
    backbone = await compare([
      { name: 'old featureMap', run: (img) => oldEx.backbone.featureMap(img) },
      { name: 'new featureMap', run: (img) => newEx.backbone.featureMap(img) },
    ], images, rounds);
  } finally {
    await oldEx.dispose();
    await newEx.dispose();
    removeDir(cacheDir);
  }
  const echo = echoWorker();
  const handoff = await compare([
    { name: 'clone (as now)', run: (img) => echo.send(img.data, false) },
    { name: 'copy + transfer', run: (img) => echo.send(new Uint8Array(img.data), true) },
  ], images, rounds);
  await echo.close();

  console.log(`${images.length} labelled photos pre-decoded (default size policy), ${rounds} rounds; old = ${sha.slice(0, 12)} (${opt.against}), new = this checkout`);
  console.log(machineLine());
  console.log(`\nbackbone call, ${opt.model}, 1 ORT thread, one image at a time:`);
  console.log(table(['configuration', 'wall ms/img', 'ratio', 'CPU ms/img', 'ratio'], backbone));
  console.log('\nhand-off alone (round trip to an echo worker):');
  console.log(table(['configuration', 'wall ms/img', 'ratio', 'CPU ms/img', 'ratio'], handoff));
  console.log(`\nreproduce: ${reproduceLine('dist/scripts/bench/handoff.js')}`);
}

await main();
