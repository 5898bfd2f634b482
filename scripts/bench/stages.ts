/**
 * Each stage of spp-extract's pipeline timed alone, in one process, on the same images: decode at the
 * default size policy (one at a time, and as many in flight as the run's default --decode-ahead), the ONNX backbone
 * on the decoded pixels (1 thread, the shapes the run sees), SPP + normalise, and the .npy rows and
 * manifest lines written through the tool's own writer. Every stage calls the project's own
 * functions, the way the pipeline calls them; nothing here is a copy of them.
 *
 * Cost is CPU time (user + system of the whole process, so libuv's pool where sharp and ONNX Runtime
 * run counts too), per image: what a stage takes from the cores whatever else shares the machine.
 * Wall time is kept beside it.
 */
import { join } from 'node:path';
import { colourHex } from '../../src/core/options.js';
import type { DecodedImage, DecodeOptions } from '../../src/decode/decode.js';
import type { FeatureMap } from '../../src/spp/spp.js';
import type { Extractor } from '../../src/pipeline/extractor.js';
import type { RunHeader } from '../../src/output/index.js';
import { makeTempDir, removeDir } from './common.js';

/** One stage's cost per image, in ms. */
export interface Cost { cpuMs: number; wallMs: number }

export interface StageCosts {
  decodeOne: Cost;
  /** In flight as the pipeline runs it (its default --decode-ahead): the decode cost the bound counts. */
  decodeAhead: Cost;
  backbone: Cost;
  spp: Cost;
  write: Cost;
}

/** The run's own default depth (--decode-ahead) at the default size policy, on this machine. */
export async function pipelineDecodeAhead(): Promise<number> {
  const [{ defaultDecodeAhead }, { DEFAULT_DECODE_OPTIONS }] = await Promise.all([import('../../src/pipeline/run.js'), import('../../src/decode/decode.js')]);
  return defaultDecodeAhead(DEFAULT_DECODE_OPTIONS);
}
const WARMUP = 2; // untimed images before each timed loop (JIT, allocator, ORT arenas)

/** Starts a clock; the function it returns gives CPU and wall ms since then, divided by `per`. */
function stopwatch(): (per: number) => Cost {
  // A collection owed by an earlier stage is not charged to this one (the child runs with --expose-gc).
  (globalThis as { gc?: () => void }).gc?.();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  return (per) => {
    const { user, system } = process.cpuUsage(cpu0);
    return { cpuMs: (user + system) / 1000 / per, wallMs: (performance.now() - t0) / per };
  };
}

/** Decodes `paths` with `inFlight` decodes pending at a time, as runExtraction keeps them; results in input order. */
async function decodeAll(paths: readonly string[], decode: DecodeOptions, inFlight: number): Promise<DecodedImage[]> {
  const { decodeResolved } = await import('../../src/decode/decode.js');
  const out: DecodedImage[] = new Array(paths.length);
  let next = 0;
  const lane = async () => {
    while (next < paths.length) {
      const i = next++;
      out[i] = await decodeResolved(paths[i]!, decode, paths[i]);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return out;
}

async function timeDecode(paths: readonly string[], decode: DecodeOptions) {
  await decodeAll(paths.slice(0, WARMUP), decode, 1);
  let stop = stopwatch();
  const images = await decodeAll(paths, decode, 1);
  const decodeOne = stop(paths.length);
  stop = stopwatch();
  await decodeAll(paths, decode, await pipelineDecodeAhead());
  return { images, decodeOne, decodeAhead: stop(paths.length) };
}

async function timeBackbone(extractor: Extractor, images: readonly DecodedImage[]) {
  const { backbone } = extractor;
  for (const img of images.slice(0, WARMUP)) await backbone.featureMap(img);
  const maps: FeatureMap[] = [];
  const stop = stopwatch();
  for (const img of images) maps.push(await backbone.featureMap(img));
  return { maps, backbone: stop(images.length) };
}

async function timeSpp(extractor: Extractor, maps: readonly FeatureMap[]) {
  const { pyramidPool, normalizeDescriptor } = await import('../../src/spp/spp.js');
  const { levels, pool, normalize } = extractor.info;
  const descriptors: Float32Array[] = [];
  const stop = stopwatch();
  for (const map of maps) descriptors.push(normalizeDescriptor(pyramidPool(map, levels, pool), normalize));
  return { descriptors, spp: stop(maps.length) };
}

/** What the CLI's .npy output records about this run (the fields its header has). */
function header(info: Extractor['info'], inputs: number): RunHeader {
  return {
    tool: 'spp-extract', engine: info.engine, model: info.model, modelFormat: info.format, layer: info.layer,
    inputRange: info.inputRange, levels: info.levels, pool: info.pool, normalize: info.normalize, dim: info.dim,
    channels: info.channels, dtype: 'float32', size: info.decode.size, maxSide: info.decode.maxSide,
    background: colourHex(info.decode.background), failOn: info.decode.failOn, inputs,
  };
}

/** Rows and manifest lines through the writer the CLI opens for `-o out.npy`, closed (synced, renamed) at the end. */
async function timeWrite(extractor: Extractor, paths: readonly string[], images: readonly DecodedImage[], descriptors: readonly Float32Array[]): Promise<Cost> {
  const { openWriter, prepareOutput } = await import('../../src/output/index.js');
  const dir = makeTempDir('spp-bench-write-');
  const prepared = await prepareOutput(join(dir, 'stages.npy'), { force: true });
  try {
    const items = paths.map((path, index) => ({ index, path }));
    const opened = await openWriter(prepared, header(extractor.info, paths.length), items, false);
    if (opened.kind !== 'writer') throw new Error('a fresh .npy output did not open a writer');
    const stop = stopwatch();
    for (let i = 0; i < descriptors.length; i++) {
      const { originalWidth: width, originalHeight: height } = images[i]!;
      await opened.writer.row({ index: i, path: paths[i]!, width, height, descriptor: descriptors[i]! });
    }
    await opened.writer.close({ rows: descriptors.length, failures: 0, complete: true });
    return stop(descriptors.length);
  } finally {
    prepared.release();
    removeDir(dir);
  }
}

/**
 * All four stages on `paths`, one after the other, each alone. The backbone is the ONNX engine the
 * CLI loads, on this thread (no worker: its message passing is the pipeline's cost, not the stage's)
 * with 1 intra-op thread.
 */
export async function measureStages(paths: readonly string[], model: string, cacheDir: string, levels: readonly number[]): Promise<{ costs: StageCosts; backend: string }> {
  const { createExtractor } = await import('../../src/pipeline/extractor.js');
  const { DEFAULT_DECODE_OPTIONS } = await import('../../src/decode/decode.js');
  // Decoding is timed before the model runtime is loaded, so none of its threads exist yet.
  const { images, decodeOne, decodeAhead } = await timeDecode(paths, DEFAULT_DECODE_OPTIONS);
  const extractor = await createExtractor({ model, cacheDir, engine: 'onnx', threads: 1, worker: false, levels, pool: 'max' });
  try {
    const { maps, backbone } = await timeBackbone(extractor, images);
    const { descriptors, spp } = await timeSpp(extractor, maps);
    const write = await timeWrite(extractor, paths, images, descriptors);
    return { costs: { decodeOne, decodeAhead, backbone, spp, write }, backend: extractor.info.backend };
  } finally {
    await extractor.dispose();
  }
}
